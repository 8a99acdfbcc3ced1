r"""Grams, Gradient Descent with Adaptive Momentum Scaling (Cao, Li, Liu & Liang, 2024,
arXiv:2412.17107), Algorithm 1.

Adam's update magnitude with the *current gradient's* sign: momentum decides how far to move,
the gradient decides which way.

    m_t = β1 m_{t-1} + (1 - β1) g_t,   v_t = β2 v_{t-1} + (1 - β2) g_t^2
    u_t = m̂_t / (sqrt(v̂_t) + ε)                     # m̂, v̂ bias-corrected
    θ_t = θ_{t-1} - η (sign(g_t) ⊙ |u_t| + λ θ_{t-1})  # decoupled weight decay

Unlike the cautious mask (which zeroes coordinates where u and g disagree), Grams flips them.
ε sits outside the bias-corrected root, as in the paper's algorithm; the authors' package
(grams-pytorch) puts it inside, sqrt(v_t) + ε with the correction folded into the step, which
differs by O(ε) and is tested as such.
"""
from __future__ import annotations

import torch

from optrepro.kernels import batched, fused
from optrepro.optim.base import adam_steps, check_args, check_params, eval_closure


@fused
def grams_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: float, beta1: float,
                 beta2: float, eps: float, weight_decay: float, bc1: float, bc2: float) -> None:
    p.mul_(1 - lr * weight_decay)
    m.mul_(beta1).add_(g * (1 - beta1))
    v.mul_(beta2).add_(g * g * (1 - beta2))
    u = (m / bc1).abs() / ((v / bc2).sqrt() + eps)
    p.sub_(torch.sign(g) * u * lr)


class Grams(torch.optim.Optimizer):
    """Grams with the torch.optim API (defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        with batched(grams_update) as call:  # one compiled call per group
            for group, p, st, bc1, bc2 in adam_steps(self):
                call(p, p.grad, st["exp_avg"], st["exp_avg_sq"], group["lr"], *group["betas"], group["eps"],
                             group["weight_decay"], bc1, bc2)
        return loss
