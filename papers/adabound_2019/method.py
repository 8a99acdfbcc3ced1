r"""AdaBound and AMSBound (Luo et al., ICLR 2019, arXiv:1902.09843), Algorithms 2-3.

Adam's per-coordinate step size α/sqrt(v̂_t) is clipped into a band [η_l(t), η_u(t)] that starts
wide (Adam) and closes onto a constant (SGD with step `final_lr`):

    m_t = β1 m_{t-1} + (1 - β1) g_t,   v_t = β2 v_{t-1} + (1 - β2) g_t^2
    (AMSBound: v_t ← max(v_{t-1}^max, v_t), the AMSGrad maximum)
    η_l(t) = final_lr (1 - 1/(γ t + 1)),   η_u(t) = final_lr (1 + 1/(γ t))
    η_t = clip(α sqrt(1 - β2^t) / (1 - β1^t) / (sqrt(v_t) + ε), η_l(t), η_u(t))
    θ_t = θ_{t-1} - η_t ⊙ m_t

Weight decay is L2 (`g_t += λ θ_{t-1}`). As in the authors' code, the bias corrections sit
inside the clipped step, and `final_lr` follows the learning-rate schedule: it is scaled by
lr / initial lr, so a step decay of α also decays the SGD limit.
"""
from __future__ import annotations

import torch

from optrepro.kernels import batched, fused
from optrepro.optim.base import check_args, check_params, eval_closure, init_state, params_with_grad


@fused
def adabound_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, vmax: torch.Tensor,
                    beta1: float, beta2: float, eps: float, weight_decay: float, step_size: float, lower: float,
                    upper: float, amsbound: bool) -> None:
    """One step in place on p, m, v (and vmax); step_size = α sqrt(1-β2^t)/(1-β1^t)."""
    g = g + weight_decay * p
    m.mul_(beta1).add_(g * (1 - beta1))
    v.mul_(beta2).add_(g * g * (1 - beta2))
    if amsbound:
        vmax.copy_(torch.maximum(vmax, v))  # not out=: it cannot compile for a non-contiguous vmax
        denom = vmax.sqrt() + eps
    else:
        denom = v.sqrt() + eps
    p.sub_((step_size / denom).clamp(lower, upper) * m)


def bounds(final_lr: float, gamma: float, t: int) -> tuple[float, float]:
    """(η_l(t), η_u(t)) at step t >= 1."""
    return final_lr * (1 - 1 / (gamma * t + 1)), final_lr * (1 + 1 / (gamma * t))


class AdaBound(torch.optim.Optimizer):
    """AdaBound (amsbound=False) / AMSBound (amsbound=True); defaults from the paper: lr 1e-3,
    final_lr 0.1, γ 1e-3."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), final_lr: float = 0.1, gamma: float = 1e-3,
                 eps: float = 1e-8, weight_decay: float = 0.0, amsbound: bool = False):
        check_args(lr=lr, betas=betas, final_lr=final_lr, eps=eps, weight_decay=weight_decay, gamma=gamma)
        if gamma >= 1:
            raise ValueError(f"gamma must be in [0, 1), got {gamma}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), final_lr=final_lr, gamma=gamma,
                                                    eps=eps, weight_decay=weight_decay, amsbound=amsbound))

    def add_param_group(self, group):
        """Every group, also one added mid-run, keeps the lr it started with: final_lr follows lr's
        schedule as final_lr * lr / initial lr (saved in state_dict, unlike an attribute)."""
        super().add_param_group(group)
        self.param_groups[-1].setdefault("initial_lr_bound", self.param_groups[-1]["lr"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        with batched(adabound_update) as call:  # one compiled call per group
            for group, p, st in params_with_grad(self):
                init_state(st, p, "exp_avg", "exp_avg_sq", *(["max_exp_avg_sq"] if group["amsbound"] else []))
                st["step"] += 1
                t = st["step"]
                b1, b2 = group["betas"]
                final_lr = group["final_lr"] * group["lr"] / group["initial_lr_bound"]
                lower, upper = bounds(final_lr, group["gamma"], t)
                step_size = group["lr"] * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
                call(p, p.grad, st["exp_avg"], st["exp_avg_sq"], st.get("max_exp_avg_sq", st["exp_avg_sq"]),
                                b1, b2, group["eps"], group["weight_decay"], step_size, lower, upper, group["amsbound"])
        return loss


class AMSBound(AdaBound):
    """AdaBound with the AMSGrad maximum of the second moment."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), final_lr: float = 0.1, gamma: float = 1e-3,
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr, betas, final_lr, gamma, eps, weight_decay, amsbound=True)
