r"""Policy-gradient building blocks, written on numpy/torch arrays of one trajectory or a batch.

- `discounted_returns`: G_t = Σ_{k>=t} γ^{k-t} r_k (reward to go), restarting after each done.
- `gae`: generalized advantage estimation (Schulman et al. 2016),
      δ_t = r_t + γ (1 - done_t) V_{t+1} - V_t,   A_t = δ_t + γ λ (1 - done_t) A_{t+1};
  λ = 1 gives G_t - V_t (with the bootstrap V at the end), λ = 0 gives δ_t.
- `gpomdp_gradient`: Σ_t ∇ log π(a_t|s_t) γ^t (G_t - b_t) averaged over episodes (the REINFORCE /
  G(PO)MDP estimator of ∇ E[Σ_t γ^t r_t], with an optional baseline b_t).
"""
from __future__ import annotations

import numpy as np


def discounted_returns(rewards, gamma: float, dones=None) -> np.ndarray:
    r = np.asarray(rewards, dtype=float)
    d = np.zeros_like(r) if dones is None else np.asarray(dones, dtype=float)
    out, g = np.zeros_like(r), 0.0
    for t in range(len(r) - 1, -1, -1):
        g = r[t] + gamma * (1.0 - d[t]) * g
        out[t] = g
    return out


def gae(rewards, values, dones, last_value: float, gamma: float, lam: float) -> np.ndarray:
    """Advantages of one rollout of length T: `values` V(s_0..s_{T-1}), `last_value` V(s_T)
    (0 if the last step ended the episode), `dones[t]` = the episode ended at step t."""
    r, v, d = (np.asarray(x, dtype=float) for x in (rewards, values, dones))
    nxt = np.append(v[1:], last_value)
    adv, a = np.zeros_like(r), 0.0
    for t in range(len(r) - 1, -1, -1):
        delta = r[t] + gamma * (1.0 - d[t]) * nxt[t] - v[t]
        a = delta + gamma * lam * (1.0 - d[t]) * a
        adv[t] = a
    return adv


def gpomdp_gradient(score_per_step, rewards_per_step, gamma: float, baseline=None) -> np.ndarray:
    """Mean over episodes of Σ_t score_t γ^t (G_t - b_t), with score_t = ∇ log π(a_t|s_t) (episodes
    x steps x params, or lists of (steps x params)) and G_t the reward to go from t."""
    total = 0.0
    for k, (sc, rw) in enumerate(zip(score_per_step, rewards_per_step)):
        sc, rw = np.asarray(sc, dtype=float), np.asarray(rw, dtype=float)
        w = discounted_returns(rw, gamma) * gamma ** np.arange(len(rw))
        if baseline is not None:
            w = w - np.asarray(baseline[k], dtype=float) * gamma ** np.arange(len(rw))
        total = total + np.tensordot(w, sc, axes=(0, 0))
    return total / len(score_per_step)
