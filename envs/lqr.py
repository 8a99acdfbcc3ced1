r"""Linear-quadratic regulator as a gymnasium environment, with its exact cost and policy gradient.

    x_{t+1} = A x_t + B u_t + w_t,   w_t ~ N(0, noise^2 I),   x_0 ~ N(0, init^2 I),
    reward_t = -(x_t^T Q x_t + u_t^T R u_t).

For a linear Gaussian policy u = -K x + σ ε (ε ~ N(0, I)) the discounted cost
J(K) = E Σ_t γ^t (x_t^T Q x_t + u_t^T R u_t) is known in closed form: the policy noise acts as extra
process noise W = noise^2 I + σ^2 B B^T, and with A_K = A - B K

    Σ_K = Σ_0 + γ A_K Σ_K A_K^T + γ/(1-γ) W          (discounted state correlation)
    P_K = Q + K^T R K + γ A_K^T P_K A_K               (value matrix)
    J(K) = tr((Q + K^T R K) Σ_K) + σ^2 tr(R) / (1-γ)
    ∇_K J = 2 ((R + γ B^T P_K B) K - γ B^T P_K A) Σ_K  (Fazel et al. 2018, Lemma 1, with noise)

so a sampled policy gradient can be checked against the exact one. Episodes end by truncation
after `horizon` steps (γ^horizon is negligible for the defaults).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from scipy.linalg import solve_discrete_lyapunov


def default_system():
    """A 2-state, 1-input system (a damped double integrator), stable in open loop."""
    A = np.array([[0.9, 0.2], [0.0, 0.9]])
    B = np.array([[0.0], [0.5]])
    return A, B, np.eye(2), 0.1 * np.eye(1)


class LQREnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, A=None, B=None, Q=None, R=None, noise: float = 0.1, init: float = 1.0,
                 horizon: int = 200, bound: float = 1e3):
        d = default_system()
        self.A, self.B, self.Q, self.R = (np.asarray(x, dtype=np.float64) if x is not None else y
                                          for x, y in zip((A, B, Q, R), d))
        n, m = self.B.shape
        if self.A.shape != (n, n) or self.Q.shape != (n, n) or self.R.shape != (m, m):
            raise ValueError(f"shapes: A {self.A.shape}, B {self.B.shape}, Q {self.Q.shape}, R {self.R.shape}")
        self.noise, self.init, self.horizon, self.bound = noise, init, horizon, bound
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float64)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (m,), np.float64)
        self._x, self._t = np.zeros(n), 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._x = self.init * self.np_random.standard_normal(self.A.shape[0])
        self._t = 0
        return self._x.copy(), {}

    def step(self, action):
        u = np.asarray(action, dtype=np.float64).reshape(self.B.shape[1])
        x = self._x
        reward = -float(x @ self.Q @ x + u @ self.R @ u)
        self._x = self.A @ x + self.B @ u + self.noise * self.np_random.standard_normal(x.shape[0])
        self._t += 1
        diverged = bool(np.abs(self._x).max() > self.bound)
        return self._x.copy(), reward, diverged, self._t >= self.horizon, {}

    # -- exact quantities for a linear Gaussian policy u = -K x + sigma eps
    def _matrices(self, K, sigma: float, gamma: float):
        K = np.atleast_2d(np.asarray(K, dtype=np.float64))
        AK = self.A - self.B @ K
        if np.max(np.abs(np.linalg.eigvals(AK))) * np.sqrt(gamma) >= 1:
            raise ValueError("K does not stabilise the system (sqrt(gamma) * spectral radius of A - BK >= 1)")
        n = self.A.shape[0]
        W = self.noise ** 2 * np.eye(n) + sigma ** 2 * self.B @ self.B.T
        sig = solve_discrete_lyapunov(np.sqrt(gamma) * AK, self.init ** 2 * np.eye(n) + gamma / (1 - gamma) * W)
        P = solve_discrete_lyapunov(np.sqrt(gamma) * AK.T, self.Q + K.T @ self.R @ K)
        return K, sig, P

    def exact_cost(self, K, sigma: float = 0.0, gamma: float = 0.99) -> float:
        K, sig, _ = self._matrices(K, sigma, gamma)
        return float(np.trace((self.Q + K.T @ self.R @ K) @ sig) + sigma ** 2 * np.trace(self.R) / (1 - gamma))

    def exact_grad(self, K, sigma: float = 0.0, gamma: float = 0.99) -> np.ndarray:
        K, sig, P = self._matrices(K, sigma, gamma)
        return 2 * ((self.R + gamma * self.B.T @ P @ self.B) @ K - gamma * self.B.T @ P @ self.A) @ sig

    def optimal_gain(self, gamma: float = 0.99) -> np.ndarray:
        """K* from the discounted Riccati equation (iterated to convergence)."""
        P = self.Q.copy()
        for _ in range(100000):
            G = self.R + gamma * self.B.T @ P @ self.B
            K = gamma * np.linalg.solve(G, self.B.T @ P @ self.A)
            P_new = self.Q + K.T @ self.R @ K + gamma * (self.A - self.B @ K).T @ P @ (self.A - self.B @ K)
            if np.max(np.abs(P_new - P)) < 1e-13:
                return K
            P = P_new
        raise RuntimeError("Riccati iteration did not converge")
