r"""A small random tabular MDP as a gymnasium environment, with exact policy evaluation and the
exact policy gradient of a softmax policy.

P[s, a] is a distribution over next states (Dirichlet draws, fixed by `mdp_seed`), rewards
R[s, a] ~ U(0, 1), start distribution mu uniform. For the softmax policy π(a|s) ∝ exp θ[s, a]:

    V = (I - γ P_π)^{-1} r_π,   Q = R + γ P V,   d_π = (1-γ) μ^T (I - γ P_π)^{-1},
    J(θ) = μ^T V,   ∂J/∂θ[s, a] = d_π(s) π(a|s) (Q(s, a) - V(s)) / (1-γ)   (policy gradient theorem).

Episodes end by truncation after `horizon` steps.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class TabularMDPEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, n_states: int = 5, n_actions: int = 3, mdp_seed: int = 0, horizon: int = 100):
        if n_states < 1 or n_actions < 1 or horizon < 1:
            raise ValueError("n_states, n_actions and horizon must be >= 1")
        g = np.random.default_rng(mdp_seed)
        self.P = g.dirichlet(np.ones(n_states), size=(n_states, n_actions))
        self.R = g.uniform(0, 1, size=(n_states, n_actions))
        self.mu = np.full(n_states, 1.0 / n_states)
        self.horizon = horizon
        self.observation_space = gym.spaces.Discrete(n_states)
        self.action_space = gym.spaces.Discrete(n_actions)
        self._s, self._t = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._s = int(self.np_random.choice(len(self.mu), p=self.mu))
        self._t = 0
        return self._s, {}

    def step(self, action):
        a = int(action)
        reward = float(self.R[self._s, a])
        self._s = int(self.np_random.choice(self.P.shape[0], p=self.P[self._s, a]))
        self._t += 1
        return self._s, reward, False, self._t >= self.horizon, {}

    # -- exact quantities
    @staticmethod
    def softmax(theta) -> np.ndarray:
        z = np.exp(theta - theta.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def evaluate(self, pi, gamma: float):
        """(V, Q, d_π) of the stochastic policy `pi` (states x actions)."""
        P_pi = np.einsum("sa,sat->st", pi, self.P)
        r_pi = (pi * self.R).sum(axis=1)
        inv = np.linalg.inv(np.eye(len(r_pi)) - gamma * P_pi)
        V = inv @ r_pi
        return V, self.R + gamma * self.P @ V, (1 - gamma) * self.mu @ inv

    def exact_return(self, theta, gamma: float) -> float:
        V, _, _ = self.evaluate(self.softmax(theta), gamma)
        return float(self.mu @ V)

    def exact_grad(self, theta, gamma: float) -> np.ndarray:
        pi = self.softmax(theta)
        V, Q, d = self.evaluate(pi, gamma)
        return d[:, None] * pi * (Q - V[:, None]) / (1 - gamma)
