r"""Lion, EvoLved Sign Momentum (Chen et al., 2023, arXiv:2302.06675), Program 1.

Found by symbolic program search. Compared with AdamW it keeps only the momentum (no second
moment) and takes the *sign* of an interpolation between momentum and gradient, so every
coordinate moves by exactly ±lr (plus decoupled weight decay):

    c_t = β1 m_{t-1} + (1 - β1) g_t
    θ_t = θ_{t-1} - lr (sign(c_t) + λ θ_{t-1})
    m_t = β2 m_{t-1} + (1 - β2) g_t                    # a second, slower EMA (β2 = 0.99 > β1 = 0.9)

Because |sign(c)| = 1 the update norm is larger than AdamW's: the paper uses a 3-10x smaller lr and
a 3-10x larger λ, keeping lr·λ (the effective decay) about the same. sign(0) = 0.
"""
from __future__ import annotations

import torch

from optrepro.kernels import batched, fused
from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


@fused
def lion_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, lr: float, beta1: float, beta2: float,
                weight_decay: float) -> None:
    """One Lion step, in place on p and m."""
    p.mul_(1 - lr * weight_decay)
    p.sub_(torch.sign(m * beta1 + g * (1 - beta1)) * lr)
    m.mul_(beta2).add_(g * (1 - beta2))


class Lion(torch.optim.Optimizer):
    """Lion with the torch.optim API (defaults from the paper: lr 1e-4, betas (0.9, 0.99))."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        check_args(lr=lr, lr_positive=True, betas=betas, beta_closed=True, weight_decay=weight_decay)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        with batched(lion_update) as call:  # one compiled call per group
            for group, p, st in params_with_grad(self):
                if not st:
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                call(p, p.grad, st["exp_avg"], group["lr"], *group["betas"], group["weight_decay"])
        return loss
