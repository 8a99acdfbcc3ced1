"""Multi-level Monte Carlo actor-critic (MAC; Suttle, Bedi, Patel, Sadler, Koppel and Manocha,
ICML 2023) for average-reward RL, tabular: a softmax actor theta[s, a], a differential critic V[s]
and an average-reward estimate eta, all updated from the same transitions of one continuing chain:

    delta_t = r_t - eta + V(s_{t+1}) - V(s_t),
    eta   += a_eta   * E[r_t - eta],
    V     += a_V     * E[delta_t e_{s_t}],
    theta += a_theta * E[delta_t grad log pi(a_t | s_t)],

where E[.] over a rollout is the MLMC estimate (common.rl.average_reward.mlmc_weights: a rollout of
2^J transitions, J ~ Geometric(1/2), capped at t_max) for MAC, and the plain mean of a fixed-length
rollout of `batch` transitions for vanilla actor-critic. Both consume transitions from the same
never-reset chain, and a run stops at a fixed number of transitions."""
from __future__ import annotations

import numpy as np

from optrepro.rl.average_reward import mlmc_weights, rollout_length, softmax_policy


def actor_critic(P, R, budget: int, rng: np.random.Generator, mlmc: bool, batch: int = 1, t_max: int = 64,
                 lr_actor: float = 0.5, lr_critic: float = 0.1, lr_eta: float = 0.05, on_iter=None):
    """Runs until `budget` transitions are used; returns (theta, V, eta, iterations).
    `on_iter(transitions_used, theta)` is called after every update."""
    S, A = R.shape
    theta, V, eta = np.zeros((S, A)), np.zeros(S), 0.0
    s, used, it = 0, 0, 0
    cumP = np.cumsum(P, axis=2)
    while used < budget:
        if mlmc:
            J = int(rng.geometric(0.5))
            n, w = rollout_length(J, t_max), mlmc_weights(J, t_max)
        else:
            n, w = batch, np.full(batch, 1.0 / batch)
        pi = softmax_policy(theta)
        cumpi = np.cumsum(pi, axis=1)
        ss, aa, rr, s2 = np.empty(n, int), np.empty(n, int), np.empty(n), np.empty(n, int)
        u = rng.random((n, 2))
        for t in range(n):
            a = min(int(np.searchsorted(cumpi[s], u[t, 0], side="right")), A - 1)
            nxt = min(int(np.searchsorted(cumP[s, a], u[t, 1], side="right")), S - 1)
            ss[t], aa[t], rr[t], s2[t] = s, a, R[s, a], nxt
            s = nxt
        used += n
        delta = rr - eta + V[s2] - V[ss]
        g_eta = float(w @ (rr - eta))
        g_v = np.bincount(ss, w * delta, S)
        g_theta = np.zeros((S, A))
        np.add.at(g_theta, (ss, aa), w * delta)
        g_theta -= np.bincount(ss, w * delta, S)[:, None] * pi  # sum_t w_t delta_t (e_{a_t} - pi(.|s_t))
        eta += lr_eta * g_eta
        V += lr_critic * g_v
        theta += lr_actor * g_theta
        it += 1
        if on_iter is not None:
            on_iter(used, theta)
    return theta, V, eta, it
