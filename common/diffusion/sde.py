"""Reverse-time SDE samplers for the VP process (Song et al. 2021) with any ε-predictor.

In decreasing time the reverse SDE of dx = -β(t) x / 2 dt + √β(t) dw is, for a step of size h > 0,

    x_{t-h} ≈ x + h F(x, t) + √(h β(t)) z,    F(x, t) = β(t) x / 2 + β(t) ∇log p_t(x),   ∇log p_t = -ε̂ / σ(t)

- `em_sample`: Euler-Maruyama on a uniform grid from t_start down to t_end.
- `adaptive_sample`: the adaptive-step solver of Jolicoeur-Martineau, Li, Piché-Taillefer, Kachman
  and Mitliagkas (2021, "Gotta Go Fast When Generating Data with Score-Based Models", Algorithm 1):
  each attempt takes the Euler-Maruyama proposal x' and the improved-Euler one
  x'' = (x' + x̃) / 2, x̃ = x + h F(x', t - h) + √(h β(t - h)) z with the same z; the scaled error
  E = ‖(x' - x'') / δ‖₂ / √d, δ = max(ε_abs, ε_rel · max(|x'|, |x'_prev|)) (x'_prev: the last accepted
  proposal); the step is accepted when E ≤ 1 (x ← x'', the higher-order value), and in either case
  h ← min(h_max, θ h E^(-r)), never past t_end. Every sample has its own time and step size.

Both end with the denoising step x̂0 = (x - σ ε̂) / α at t_end, as the paper does (Jolicoeur-Martineau
et al. 2020). Every ε evaluation of every sample is counted (`nfe`: the mean per sample).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from optrepro.diffusion.process import Process


class Counted:
    """eps_fn(x, t) with t one time per sample; counts evaluations (rows)."""

    def __init__(self, eps_fn: Callable):
        self.eps_fn, self.evals = eps_fn, 0

    def __call__(self, x, t):
        self.evals += len(x)
        return self.eps_fn(x, t)


def beta(process: Process, t):
    return process.beta_min + (process.beta_max - process.beta_min) * t


def drift(process: Process, eps: Counted, x, t):
    """F(x, t) = β(t) x / 2 - β(t) ε̂(x, t) / σ(t) (t: one time per sample)."""
    b = beta(process, t)[:, None].to(x.dtype)
    return 0.5 * b * x - b * eps(x, t) / process.sigma(t)[:, None].to(x.dtype)


def denoise(process: Process, eps: Counted, x, t):
    a, s = process.alpha(t)[:, None].to(x.dtype), process.sigma(t)[:, None].to(x.dtype)
    return (x - s * eps(x, t)) / a


def _check_vp(process: Process):
    if process.kind != "vp":
        raise ValueError("the reverse-SDE samplers are written for the VP process")


def em_sample(eps_fn: Callable, process: Process, x, steps: int, gen: torch.Generator, t_start: float = 1.0,
              t_end: float = 1e-3):
    """Euler-Maruyama with `steps` uniform steps, then the denoising step. Returns (x0, {"nfe": ...})."""
    _check_vp(process)
    eps = Counted(eps_fn)
    ts = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    for i in range(steps):
        t, h = ts[i].expand(len(x)), float(ts[i] - ts[i + 1])
        z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        x = x + h * drift(process, eps, x, t) + (h * beta(process, t))[:, None].sqrt().to(x.dtype) * z
    x0 = denoise(process, eps, x, ts[-1].expand(len(x)))
    return x0, {"nfe": eps.evals / len(x)}


def adaptive_sample(eps_fn: Callable, process: Process, x, gen: torch.Generator, eps_rel: float = 0.05,
                    eps_abs: float = 0.01, r: float = 0.9, theta: float = 0.9, h_init: float = 0.01,
                    h_max: float = 1.0, t_start: float = 1.0, t_end: float = 1e-3, max_attempts: int = 100_000):
    """Algorithm 1 of Jolicoeur-Martineau et al. (2021), batched with per-sample t and h, then the
    denoising step. Returns (x0, {"nfe", "accepted", "rejected"}: means per sample)."""
    _check_vp(process)
    eps = Counted(eps_fn)
    n, d = len(x), x[0].numel()
    t = torch.full((n,), t_start, dtype=torch.float64)
    h = torch.full((n,), h_init, dtype=torch.float64)
    x_prev = x.clone()
    accepted = torch.zeros(n, dtype=torch.long)
    rejected = torch.zeros(n, dtype=torch.long)
    for _ in range(max_attempts):
        act = t - t_end > 1e-12
        if not act.any():
            break
        i = torch.nonzero(act).flatten()
        xa, ta = x[i], t[i]
        ha = torch.minimum(h[i], ta - t_end)
        z = torch.randn(xa.shape, generator=gen, dtype=x.dtype)
        hd = ha[:, None].to(x.dtype)
        k1 = hd * drift(process, eps, xa, ta) + (ha * beta(process, ta))[:, None].sqrt().to(x.dtype) * z
        k2 = hd * drift(process, eps, xa + k1, ta - ha) + (ha * beta(process, ta - ha))[:, None].sqrt().to(x.dtype) * z
        x1, x2 = xa + k1, xa + 0.5 * (k1 + k2)  # the Euler-Maruyama and the improved-Euler proposals
        delta = torch.clamp(eps_rel * torch.maximum(x1.abs(), x_prev[i].abs()), min=eps_abs)
        err = ((0.5 * (k2 - k1) / delta).reshape(len(i), -1).norm(dim=1) / math.sqrt(d)).double()
        ok = err <= 1.0
        j = i[ok]
        x[j], x_prev[j], t[j] = x2[ok], x1[ok], ta[ok] - ha[ok]
        accepted[j] += 1
        rejected[i[~ok]] += 1
        h[i] = torch.clamp(theta * ha * err.clamp_min(1e-12) ** (-r), max=h_max)
    else:
        raise RuntimeError(f"adaptive_sample did not reach t_end in {max_attempts} attempts")
    x0 = denoise(process, eps, x, torch.full((n,), t_end, dtype=torch.float64))
    return x0, {"nfe": eps.evals / n, "accepted": float(accepted.double().mean()),
                "rejected": float(rejected.double().mean())}
