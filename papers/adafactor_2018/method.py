r"""Adafactor (Shazeer and Stern, ICML 2018): Adam's second moment kept as its row and column sums
for every matrix (sublinear memory), no first moment by default, update clipping, an increasing
decay rate and a step size relative to the parameter's scale (the paper's Algorithms 4 and 5):

    beta2_t = 1 - t^(-decay_rate)                                    (0.8: beta2_1 = 0)
    for a matrix (the last two dimensions of a tensor) G_t with n rows and m columns:
        R_t = beta2_t R_{t-1} + (1 - beta2_t) (G_t^2 + eps1) 1_m          (row sums)
        C_t = beta2_t C_{t-1} + (1 - beta2_t) 1_n' (G_t^2 + eps1)          (column sums)
        V_t = R_t C_t / (1_n' R_t)                                          (a rank-1 estimate)
    for a vector: V_t = beta2_t V_{t-1} + (1 - beta2_t) (G_t^2 + eps1)
    U_t = G_t / sqrt(V_t),   U_t <- U_t / max(1, RMS(U_t) / clip_threshold)
    alpha_t = max(eps2, RMS(theta_{t-1})) * rho_t       (scale_parameter; otherwise rho_t)
    rho_t = min(lr, 1 / sqrt(t))                        (relative_step; otherwise lr, which a schedule may scale)
    with beta1 > 0: m_t = beta1 m_{t-1} + (1 - beta1) alpha_t U_t and the step is m_t
    theta_t = theta_{t-1} (1 - wd alpha_t) - alpha_t U_t

The paper's defaults: lr 1e-2 (the cap of the relative step), decay_rate 0.8, eps1 1e-30, eps2 1e-3,
clip_threshold 1, beta1 none (0 here), no weight decay. Reference: transformers' Adafactor (the
closest to the paper; it keeps row and column means, an equivalent factorization) step by step
(tests/reference/test_adafactor.py)."""
from __future__ import annotations

import math

import torch

from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.norm() / math.sqrt(x.numel())


class Adafactor(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-2, beta1: float = 0.0, decay_rate: float = 0.8, eps1: float = 1e-30,
                 eps2: float = 1e-3, clip_threshold: float = 1.0, relative_step: bool = True,
                 scale_parameter: bool = True, weight_decay: float = 0.0):
        check_args(lr=lr, eps1=eps1, eps2=eps2, weight_decay=weight_decay)
        if not (isinstance(beta1, (int, float)) and 0 <= beta1 < 1):
            raise ValueError(f"beta1 must be in [0, 1) (0: no first moment), got {beta1!r}")
        if not (isinstance(decay_rate, (int, float)) and 0 < decay_rate <= 1):
            raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate!r}")
        if not (isinstance(clip_threshold, (int, float)) and clip_threshold > 0):
            raise ValueError(f"clip_threshold must be > 0, got {clip_threshold!r}")
        super().__init__(check_params(params), dict(
            lr=lr, beta1=float(beta1), decay_rate=float(decay_rate), eps1=float(eps1), eps2=float(eps2),
            clip_threshold=float(clip_threshold), relative_step=bool(relative_step),
            scale_parameter=bool(scale_parameter), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            g = p.grad
            factored = g.ndim >= 2
            if "step" not in st:
                st["step"] = 0
                if factored:
                    st["row"] = torch.zeros(g.shape[:-1], dtype=g.dtype, device=g.device)
                    st["col"] = torch.zeros(g.shape[:-2] + g.shape[-1:], dtype=g.dtype, device=g.device)
                else:
                    st["v"] = torch.zeros_like(g)
                if group["beta1"]:
                    st["m"] = torch.zeros_like(g)
            st["step"] += 1
            t = st["step"]
            rho = min(group["lr"], 1.0 / math.sqrt(t)) if group["relative_step"] else group["lr"]
            alpha = rho * (max(group["eps2"], float(_rms(p))) if group["scale_parameter"] else 1.0)
            b2 = 1.0 - t ** (-group["decay_rate"])
            sq = g * g + group["eps1"]
            if factored:
                st["row"].mul_(b2).add_(sq.sum(-1), alpha=1 - b2)
                st["col"].mul_(b2).add_(sq.sum(-2), alpha=1 - b2)
                v = st["row"].unsqueeze(-1) * st["col"].unsqueeze(-2) / st["row"].sum(-1, keepdim=True).unsqueeze(-1)
            else:
                v = st["v"].mul_(b2).add_(sq, alpha=1 - b2)
            u = g / v.sqrt()
            u.div_(max(1.0, float(_rms(u)) / group["clip_threshold"]))
            u.mul_(alpha)
            if group["beta1"]:
                u = st["m"].mul_(group["beta1"]).add_(u, alpha=1 - group["beta1"])
            if group["weight_decay"]:
                p.mul_(1 - group["weight_decay"] * alpha)
            p.sub_(u)
        return loss
