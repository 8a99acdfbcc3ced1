r"""On-policy Mirror Descent Policy Optimization (Tomar, Shani, Efroni & Ghavamzadeh 2020).

Each iteration k is one mirror-descent step on the policy, solved approximately by m epochs of
minibatch SGD from θ_k on data of π_k (no hard trust region, no clipping):

    θ_{k+1} ≈ argmax_θ  E_{s,a ~ π_k} [ π_θ(a|s) / π_k(a|s) · A^{π_k}(s, a) ]
                         - (1 / t_k) E_{s ~ π_k} [ KL(π_θ(·|s) ‖ π_k(·|s)) ]

with the mirror-descent step size annealed, t_k = 1 - k/K over the K iterations of training (the
KL weight 1/t_k grows from 1). Compared with TRPO the KL is a penalty with a schedule, not a
constraint, and its direction is KL(π_θ ‖ π_k); compared with PPO the ratio is not clipped.
"""
from __future__ import annotations

import torch

from optrepro.rl.policy import kl


def mdpo_loss(new_dist, old_dist, actions, old_logp, adv, kl_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimize, mean KL(π_θ ‖ π_k)) on a minibatch."""
    ratio = torch.exp(new_dist.log_prob(actions) - old_logp)
    k = kl(new_dist, old_dist).mean()
    return -(ratio * adv).mean() + kl_weight * k, k


def kl_weight(k: int, n_iters: int) -> float:
    """1 / t_k with t_k = 1 - k / K."""
    return 1.0 / max(1.0 - k / n_iters, 1.0 / n_iters)
