r"""A sparse-reward gridworld as a continuing (average-reward) task, with exact average-reward
quantities (common.rl.average_reward).

An n x n grid; the agent starts in the corner (0, 0). Actions up, down, left, right move one cell
(walls stop the move); with probability `slip` the move goes in a uniformly random direction
instead. Acting in the goal corner (n-1, n-1) pays reward 1 and
returns the agent to the start. The long-run average reward is 1 / (the expected length of a
start-to-goal cycle), and the chain takes longer to mix the larger the grid: the setting where
multi-level Monte Carlo actor-critic's long rollouts are meant to help.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def grid_mdp(n: int, slip: float) -> tuple[np.ndarray, np.ndarray]:
    """(P[s, a, s'], R[s, a]) of the gridworld; states are r * n + c, the goal is n * n - 1."""
    S, A = n * n, 4
    P, R = np.zeros((S, A, S)), np.zeros((S, A))
    goal = S - 1

    def moved(s, d):
        r, c = divmod(s, n)
        r2, c2 = r + MOVES[d][0], c + MOVES[d][1]
        return r2 * n + c2 if 0 <= r2 < n and 0 <= c2 < n else s

    for s in range(S):
        for a in range(A):
            if s == goal:
                P[s, a, 0], R[s, a] = 1.0, 1.0
                continue
            P[s, a, moved(s, a)] += 1.0 - slip
            for d in range(A):
                P[s, a, moved(s, d)] += slip / A
    return P, R


class SparseGridworldEnv(gym.Env):
    """Never terminates (a continuing task); `horizon` only truncates for episodic tools."""
    metadata = {"render_modes": []}

    def __init__(self, n: int = 4, slip: float = 0.1, horizon: int = 10**9):
        if n < 2 or not 0 <= slip <= 1:
            raise ValueError(f"need n >= 2 and slip in [0, 1], got n={n}, slip={slip}")
        self.P, self.R = grid_mdp(n, slip)
        self.horizon = horizon
        self.observation_space = gym.spaces.Discrete(n * n)
        self.action_space = gym.spaces.Discrete(4)
        self._s, self._t = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._s, self._t = 0, 0
        return self._s, {}

    def step(self, action):
        a = int(action)
        reward = float(self.R[self._s, a])
        self._s = int(self.np_random.choice(self.P.shape[2], p=self.P[self._s, a]))
        self._t += 1
        return self._s, reward, False, self._t >= self.horizon, {}
