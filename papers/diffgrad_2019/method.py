r"""diffGrad (Dubey et al., IEEE TNNLS 2019, arXiv:1909.11015), Algorithm 1.

Adam whose step is scaled per coordinate by the *diffGrad friction coefficient* ξ_t, a sigmoid of
how much the gradient changed since the previous step: where the gradient barely changes (near an
optimum, or on a plateau of the short-term landscape) the step is halved; where it changes fast the
step is Adam's.

    m_t = β1 m_{t-1} + (1 - β1) g_t
    v_t = β2 v_{t-1} + (1 - β2) g_t^2
    m̂_t = m_t / (1 - β1^t),   v̂_t = v_t / (1 - β2^t)
    ξ_t = 1 / (1 + exp(-|g_{t-1} - g_t|))            # g_0 = 0, so ξ_1 = sigmoid(|g_1|)
    θ_t = θ_{t-1} - α ξ_t m̂_t / (sqrt(v̂_t) + ε)

Weight decay is L2 (`g_t += λ θ_{t-1}`), as in the authors' code. ξ_t lies in [0.5, 1), so
diffGrad's step is never larger than Adam's.
"""
from __future__ import annotations

import torch

from optrepro.kernels import batched, fused
from optrepro.optim.base import adam_steps, check_args, check_params, eval_closure


@fused
def diffgrad_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, prev: torch.Tensor,
                    lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, bc1: float,
                    bc2: float) -> None:
    """One diffGrad step in place on p, m, v and prev (which becomes g_t)."""
    g = g + weight_decay * p
    m.mul_(beta1).add_(g * (1 - beta1))
    v.mul_(beta2).add_(g * g * (1 - beta2))
    xi = torch.sigmoid((prev - g).abs())
    p.sub_(xi * m / (v.sqrt() / bc2 ** 0.5 + eps) * (lr / bc1))
    prev.copy_(g)


class DiffGrad(torch.optim.Optimizer):
    """diffGrad with the torch.optim API (defaults from the paper: lr 1e-3, betas (0.9, 0.999))."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        with batched(diffgrad_update) as call:  # one compiled call per group
            for group, p, st, bc1, bc2 in adam_steps(self, "prev_grad"):
                call(p, p.grad, st["exp_avg"], st["exp_avg_sq"], st["prev_grad"], group["lr"], *group["betas"],
                                group["eps"], group["weight_decay"], bc1, bc2)
        return loss
