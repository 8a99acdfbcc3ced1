"""Preference games: K responses (or trajectories) compared by a preference function
P[i, j] = Pr(i is preferred to j), with P + P^T = 1. Learning from preferences without a reward
model aims at the Minimax (von Neumann) Winner: the mixed policy p that solves the symmetric
zero-sum game max_p min_q p^T P q (value 1/2). With transitive preferences it is the best response;
with intransitive ones (rock-paper-scissors cycles) it is mixed, and no scalar reward can
represent the preferences.

- `preference_matrix(kind, k, seed, margin)`: transitive (Bradley-Terry from utilities), cyclic
  (generalised rock-paper-scissors, known winner: uniform), rps (a weighted 3-cycle whose winner
  is mixed and not uniform: (2, 1, 4) / 7) and random skew-symmetric games.
- `minimax_winner(P)`: the winner by linear programming (scipy's HiGHS).
- `exploitability(P, p)`: max_j Pr(j preferred to p) - 1/2; zero exactly at a Minimax Winner.
- `sample_preferences`, `fit_bradley_terry`: the reward-model route (RLHF's), for comparison.

Tests: tests/reference/test_preference.py (closed forms: uniform for odd cycles, the argmax
utility for transitive games; the LP's value is 1/2 and its exploitability 0)."""
from __future__ import annotations

import numpy as np

from optrepro.errors import ConfigError
from optrepro.rl.average_reward import softmax_policy

KINDS = ("transitive", "cyclic", "rps", "random")


def preference_matrix(kind: str, k: int, seed: int = 0, margin: float = 0.4) -> np.ndarray:
    """transitive: P_ij = sigmoid(u_i - u_j), utilities u = margin * (k-1, ..., 1, 0) * 4 / k (response 0
    best); cyclic (k odd): i beats the (k-1)/2 responses after it (mod k) with probability 1/2 + margin;
    rps (k = 3): 0 beats 1 by margin, 1 beats 2 by margin / 2, 2 beats 0 by margin / 4 (winner
    proportional to the opposite edges, (1/2, 1/4, 1) / (7/4)); random: 1/2 + margin * (A - A^T) / 2,
    A uniform on [0, 1], entries of the seed's draw."""
    if kind not in KINDS:
        raise ConfigError(f"preference kind '{kind}' unknown; valid: {', '.join(KINDS)}")
    if k < 2 or not 0 < margin <= 0.5:
        raise ConfigError(f"need k >= 2 responses and margin in (0, 0.5], got k={k}, margin={margin}")
    if kind == "transitive":
        u = margin * 4.0 / k * np.arange(k - 1, -1, -1, dtype=float)
        return 1.0 / (1.0 + np.exp(-(u[:, None] - u[None, :])))
    if kind == "rps":
        if k != 3:
            raise ConfigError(f"the rps game has 3 responses, got k={k}")
        S = np.zeros((3, 3))
        S[0, 1], S[1, 2], S[2, 0] = margin, margin / 2, margin / 4
        return 0.5 + S - S.T
    if kind == "cyclic":
        if k % 2 == 0:
            raise ConfigError(f"a cyclic game needs an odd number of responses (each beats half of the others), got {k}")
        P = np.full((k, k), 0.5)
        for i in range(k):
            for d in range(1, (k - 1) // 2 + 1):
                P[i, (i + d) % k], P[(i + d) % k, i] = 0.5 + margin, 0.5 - margin
        return P
    A = np.random.default_rng(seed).uniform(0.0, 1.0, (k, k))
    return 0.5 + margin * (A - A.T) / 2


def check_preference(P: np.ndarray) -> np.ndarray:
    P = np.asarray(P, float)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or not np.allclose(P + P.T, 1.0) or P.min() < 0 or P.max() > 1:
        raise ConfigError("a preference matrix must be square with entries in [0, 1] and P + P^T = 1")
    return P


def minimax_winner(P: np.ndarray) -> tuple[np.ndarray, float]:
    """(p, value): p maximizes min_j sum_i p_i P_ij over the simplex, by linear programming."""
    from scipy.optimize import linprog
    P = check_preference(P)
    k = len(P)
    # variables (p_1..p_k, v): maximize v s.t. v <= (P^T p)_j for all j, sum p = 1, p >= 0
    c = np.r_[np.zeros(k), -1.0]
    A_ub = np.c_[-P.T, np.ones(k)]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(k), A_eq=np.r_[np.ones(k), 0.0][None, :], b_eq=[1.0],
                  bounds=[(0, None)] * k + [(None, None)], method="highs")
    if not res.success:
        raise RuntimeError(f"linear program failed: {res.message}")
    p = np.clip(res.x[:k], 0.0, None)
    return p / p.sum(), float(res.x[k])


def win_rates(P: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pr(i preferred to a draw from q), for every response i: P q."""
    return np.asarray(P) @ np.asarray(q)


def exploitability(P: np.ndarray, p: np.ndarray) -> float:
    """max_j Pr(j preferred to p) - 1/2 = max_j (P p)_j - 1/2: how much the best response beats p
    (the duality gap of the symmetric game; zero exactly at a Minimax Winner)."""
    return float(np.max(win_rates(P, p)) - 0.5)


def head_to_head(P: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """Pr(a draw from p is preferred to a draw from q) = p^T P q."""
    return float(np.asarray(p) @ np.asarray(P) @ np.asarray(q))


def sample_preferences(P: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n comparisons of uniformly drawn distinct pairs: (winners, losers), each outcome drawn from P."""
    k = len(P)
    i = rng.integers(0, k, n)
    j = (i + rng.integers(1, k, n)) % k
    first = rng.random(n) < P[i, j]
    return np.where(first, i, j), np.where(first, j, i)


def fit_bradley_terry(winners, losers, k: int, l2: float = 1e-3) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry utilities (mean zero) from comparisons: maximize
    sum log sigmoid(u_w - u_l) - l2 |u|^2 (the small ridge keeps an undefeated response finite)."""
    from scipy.optimize import minimize
    winners, losers = np.asarray(winners), np.asarray(losers)

    def f(u):
        d = u[winners] - u[losers]
        val = np.sum(np.logaddexp(0.0, -d)) + l2 * u @ u
        s = -1.0 / (1.0 + np.exp(d))  # d/dd of log(1 + e^-d)
        g = np.bincount(winners, s, k) - np.bincount(losers, s, k) + 2 * l2 * u
        return val, g

    u = minimize(f, np.zeros(k), jac=True, method="L-BFGS-B").x
    return u - u.mean()


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x) / sum exp(x) for one vector (common.rl.average_reward.softmax_policy on one row)."""
    return softmax_policy(np.asarray(x)[None, :])[0]
