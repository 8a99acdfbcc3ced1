"""Average-reward quantities of a tabular MDP (P[s, a, s'], R[s, a]) under a stochastic policy
pi[s, a], computed exactly, and the multi-level Monte Carlo (MLMC) estimator.

    P_pi = sum_a pi(a|s) P[s, a],  r_pi = sum_a pi(a|s) R[s, a],
    d: the stationary distribution, d^T P_pi = d^T, sum d = 1 (the chain must be unichain),
    eta = d . r_pi  (the long-run average reward),
    h: the differential values, (I - P_pi) h = r_pi - eta, d . h = 0,
    Q(s, a) = R[s, a] - eta + P[s, a] . h,
    d eta / d theta[s, a] = d(s) pi(a|s) (Q(s, a) - h(s))  for the softmax policy pi ~ exp(theta).

MLMC (Dorfman and Levy, 2022; the estimator of multi-level actor-critic): draw J ~ Geometric(1/2)
on {1, 2, ...}, roll out 2^J consecutive samples when 2^J <= t_max (else 1), and return

    g = m_0 + 2^J (m_J - m_{J-1})   (2^J <= t_max),   g = m_0   (otherwise),

with m_j the mean of the first 2^j samples. Its expectation over J is m_{log2 t_max}, the mean of
t_max consecutive samples, at an expected cost of about log2 t_max samples: the bias of a long
rollout without knowing how long the chain takes to mix. Tests: tests/reference/test_average_reward.py."""
from __future__ import annotations

import numpy as np

from optrepro.envs.tabular import TabularMDPEnv


def chain(P: np.ndarray, R: np.ndarray, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.einsum("sa,sat->st", pi, P), (pi * R).sum(axis=1)


def stationary(P_pi: np.ndarray) -> np.ndarray:
    """The stationary distribution of a unichain transition matrix (least squares on d^T (P - I) = 0,
    sum d = 1)."""
    n = len(P_pi)
    A = np.vstack([(P_pi - np.eye(n)).T, np.ones(n)])
    b = np.r_[np.zeros(n), 1.0]
    d = np.linalg.lstsq(A, b, rcond=None)[0]
    d = np.clip(d, 0.0, None)
    return d / d.sum()


def evaluate(P: np.ndarray, R: np.ndarray, pi: np.ndarray):
    """(eta, h, Q, d) of policy pi."""
    P_pi, r_pi = chain(P, R, pi)
    d = stationary(P_pi)
    eta = float(d @ r_pi)
    n = len(d)
    h = np.linalg.lstsq(np.vstack([np.eye(n) - P_pi, d]), np.r_[r_pi - eta, 0.0], rcond=None)[0]
    Q = R - eta + P @ h
    return eta, h, Q, d


def average_reward(P, R, pi) -> float:
    return evaluate(P, R, pi)[0]


softmax_policy = TabularMDPEnv.softmax
"""pi[s, a] ~ exp(theta[s, a]), row by row (the tabular environment's own)."""


def exact_gradient(P, R, theta) -> np.ndarray:
    """d eta / d theta for the tabular softmax policy."""
    pi = softmax_policy(theta)
    _, h, Q, d = evaluate(P, R, pi)
    return d[:, None] * pi * (Q - h[:, None])


def optimal_average_reward(P, R, iters: int = 100_000, tol: float = 1e-12) -> float:
    """Relative value iteration (aperiodicity by mixing in the identity, which leaves the optimal
    average reward unchanged up to the factor tau = 1/2 it takes out again)."""
    n = P.shape[0]
    tau = 0.5
    Pt = tau * P + (1 - tau) * np.eye(n)[:, None, :]
    h = np.zeros(n)
    g = 0.0
    for _ in range(iters):
        q = tau * R + Pt @ h
        v = q.max(axis=1)
        g_new, v = v[0], v - v[0]
        if np.max(np.abs(v - h)) < tol:
            h, g = v, g_new
            break
        h, g = v, g_new
    return float(g / tau)


def mlmc_weights(J: int, t_max: int) -> np.ndarray:
    """Weights w over the 2^J (or 1) samples with g = w . samples (see the module docstring)."""
    n = 2 ** J
    if n > t_max:
        return np.ones(1)
    w = np.zeros(n)
    w[0] += 1.0
    w += 1.0                      # 2^J * m_J = sum of all n
    w[: n // 2] -= 2.0            # 2^J * m_{J-1} = 2 * sum of the first n / 2
    return w


def rollout_length(J: int, t_max: int) -> int:
    return 2 ** J if 2 ** J <= t_max else 1
