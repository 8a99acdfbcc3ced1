r"""Cautious optimizers: C-AdamW and C-Lion (Liang, Chen, Liu & Liu, 2024, arXiv:2411.16085).

"One line of code" on top of any momentum optimizer: zero the coordinates of the update u_t whose
sign disagrees with the current gradient g_t, and rescale the survivors so the update keeps its
overall size:

    φ_t = 1[u_t ⊙ g_t > 0]                                  # the cautious mask
    ū_t = u_t ⊙ φ_t · d / (||φ_t||_0 + 1)                     # d = numel of the tensor
    θ_t = θ_{t-1} - η (ū_t + λ θ_{t-1})                        # decoupled decay, not masked

with u_t = m̂_t / (sqrt(v̂_t) + ε) for C-AdamW and u_t = sign(β1 m_{t-1} + (1 - β1) g_t) for
C-Lion. The rescaling d / (nnz + 1) is the authors' C-Lion code and first C-AdamW release
(`normalize="count"`); their later C-AdamW (and timm) divides by max(mean(φ), 1e-3)
(`normalize="mean"`). Both are offered; the difference is a factor of about 1 + 1/nnz.
`cautious=False` gives plain AdamW / Lion from the same kernel (used by the ablation tests).
"""
from __future__ import annotations

import torch

from optrepro.kernels import batched, fused
from optrepro.optim.base import adam_steps, check_args, check_params, eval_closure, init_state, params_with_grad

NORMALIZE = ("count", "mean")


def _caution(u: torch.Tensor, g: torch.Tensor, by_mean: bool) -> torch.Tensor:
    mask = (u * g > 0).to(u.dtype)
    if by_mean:
        return u * mask / mask.mean().clamp(min=1e-3)
    return u * mask * (mask.numel() / (mask.sum() + 1))


@fused
def cadamw_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: float, beta1: float,
                  beta2: float, eps: float, weight_decay: float, bc1: float, bc2: float, cautious: bool,
                  by_mean: bool) -> None:
    p.mul_(1 - lr * weight_decay)
    m.mul_(beta1).add_(g * (1 - beta1))
    v.mul_(beta2).add_(g * g * (1 - beta2))
    u = (m / bc1) / ((v / bc2).sqrt() + eps)
    if cautious:
        u = _caution(u, g, by_mean)
    p.sub_(u * lr)


@fused
def clion_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, lr: float, beta1: float, beta2: float,
                 weight_decay: float, cautious: bool, by_mean: bool) -> None:
    p.mul_(1 - lr * weight_decay)
    u = torch.sign(m * beta1 + g * (1 - beta1))
    if cautious:
        u = _caution(u, g, by_mean)
    p.sub_(u * lr)
    m.mul_(beta2).add_(g * (1 - beta2))


def _check_normalize(normalize: str) -> None:
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}")


class CAdamW(torch.optim.Optimizer):
    """Cautious AdamW (decoupled weight decay)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 cautious: bool = True, normalize: str = "count"):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        _check_normalize(normalize)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                    cautious=cautious, normalize=normalize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        with batched(cadamw_update) as call:  # one compiled call per group
            for group, p, st, bc1, bc2 in adam_steps(self):
                call(p, p.grad, st["exp_avg"], st["exp_avg_sq"], group["lr"], *group["betas"], group["eps"],
                     group["weight_decay"], bc1, bc2, group["cautious"], group["normalize"] == "mean")
        return loss


class CLion(torch.optim.Optimizer):
    """Cautious Lion (defaults from the Lion paper: lr 1e-4, betas (0.9, 0.99))."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0,
                 cautious: bool = True, normalize: str = "count"):
        check_args(lr=lr, lr_positive=True, betas=betas, beta_closed=True, weight_decay=weight_decay)
        _check_normalize(normalize)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                                    cautious=cautious, normalize=normalize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        with batched(clion_update) as call:  # one compiled call per group
            for group, p, st in params_with_grad(self):
                init_state(st, p, "exp_avg", step=False)
                call(p, p.grad, st["exp_avg"], group["lr"], *group["betas"], group["weight_decay"],
                     group["cautious"], group["normalize"] == "mean")
        return loss
