r"""AdaBelief (Zhuang et al., NeurIPS 2020, arXiv:2010.07468), Algorithm 2.

Adam divides the momentum by the EMA of the squared gradient :math:`g_t^2`. AdaBelief divides it by
the EMA of the squared *deviation of the gradient from its prediction* :math:`(g_t - m_t)^2`, the
"belief": a gradient close to its EMA earns a large step, a surprising one a small step.

    m_t = β1 m_{t-1} + (1 - β1) g_t
    s_t = β2 s_{t-1} + (1 - β2) (g_t - m_t)^2 + ε            # Adam: (1 - β2) g_t^2, no ε here
    m̂_t = m_t / (1 - β1^t),   ŝ_t = s_t / (1 - β2^t)
    θ_t = θ_{t-1} - α m̂_t / (sqrt(ŝ_t) + ε)

Weight decay: L2 (`g_t += λ θ_{t-1}`, the paper's setting) or decoupled (`θ *= 1 - αλ`, AdamW style,
`decoupled=True`).

`rectify=True` adds RAdam's variance rectification (the default of the authors' package
adabelief-pytorch>=0.1, not of the paper's Algorithm 2): with ρ_∞ = 2/(1-β2) - 1 and
ρ_t = ρ_∞ - 2tβ2^t/(1-β2^t), the step is α r_t m_t / (sqrt(s_t) + ε) once ρ_t >= 5, where

    r_t = sqrt((1-β2^t)(ρ_t-4)(ρ_t-2)ρ_∞ / ((ρ_∞-4)(ρ_∞-2)ρ_t)) / (1-β1^t),

and an SGD-with-momentum step α m_t/(1-β1^t) before that. ε is added to s_t in place every step in this
mode too, as in the paper's Algorithm 2 and the package (which adds it while forming the unrectified
denominator, whatever the mode); an earlier version left it out, 1.6e-6 off the package at eps=1e-8.
"""
from __future__ import annotations

import math

import torch

from optrepro.kernels import batched, fused
from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


def _decay_and_moments(p, g, m, s, lr, beta1, beta2, weight_decay, decoupled):
    """Weight decay (decoupled or L2), then m_t and the belief EMA without ε; returns nothing."""
    if decoupled:
        p.mul_(1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m.mul_(beta1).add_(g * (1 - beta1))
    d = g - m
    s.mul_(beta2).add_(d * d * (1 - beta2))


@fused
def adabelief_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, s: torch.Tensor, lr: float, beta1: float,
                     beta2: float, eps: float, weight_decay: float, bc1: float, bc2: float,
                     decoupled: bool) -> None:
    """One plain (unrectified) AdaBelief step, in place on p, m, s. bc1, bc2: bias corrections."""
    _decay_and_moments(p, g, m, s, lr, beta1, beta2, weight_decay, decoupled)
    s.add_(eps)
    p.sub_(m / (s.sqrt() / bc2 ** 0.5 + eps) * (lr / bc1))


@fused
def adabelief_rectified_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, s: torch.Tensor, lr: float,
                               beta1: float, beta2: float, eps: float, weight_decay: float, step_size: float,
                               adaptive: bool, decoupled: bool) -> None:
    """One rectified step; `adaptive` says whether ρ_t >= 5 (else the momentum-SGD step)."""
    _decay_and_moments(p, g, m, s, lr, beta1, beta2, weight_decay, decoupled)
    s.add_(eps)
    if adaptive:
        p.sub_(m / (s.sqrt() + eps) * (lr * step_size))
    else:
        p.sub_(m * (lr * step_size))


def rectification(step: int, beta1: float, beta2: float) -> tuple[float, bool]:
    """(step_size multiplier, adaptive?) of the rectified variant at step t >= 1."""
    rho_inf = 2 / (1 - beta2) - 1
    b2t = beta2 ** step
    rho = rho_inf - 2 * step * b2t / (1 - b2t)
    if rho >= 5:
        r = math.sqrt((1 - b2t) * (rho - 4) / (rho_inf - 4) * (rho - 2) / rho * rho_inf / (rho_inf - 2))
        return r / (1 - beta1 ** step), True
    return 1.0 / (1 - beta1 ** step), False


class AdaBelief(torch.optim.Optimizer):
    """AdaBelief with the torch.optim API. Defaults follow the paper (eps=1e-16 as in the authors'
    code for CNNs is *not* assumed: pass eps explicitly; L2 decay, no rectification)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-16,
                 weight_decay: float = 0.0, decoupled: bool = False, rectify: bool = False):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled=decoupled, rectify=rectify))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        with batched(adabelief_rectified_update) as rect, batched(adabelief_update) as plain:  # a call per group
            for group, p, st in params_with_grad(self):
                beta1, beta2 = group["betas"]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_var"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                t = st["step"]
                args = (p, p.grad, st["exp_avg"], st["exp_avg_var"], group["lr"], beta1, beta2, group["eps"],
                        group["weight_decay"])
                if group["rectify"]:
                    size, adaptive = rectification(t, beta1, beta2)
                    rect(*args, size, adaptive, group["decoupled"])
                else:
                    plain(*args, 1 - beta1 ** t, 1 - beta2 ** t, group["decoupled"])
        return loss
