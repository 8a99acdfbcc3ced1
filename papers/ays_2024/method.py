r"""Align Your Steps (Sabour, Fidler & Kreis 2024): choose the n sampling times by minimizing an upper
bound on the KL divergence between the true reverse process and its discretization (KLUB), here in
our reading (unverified against the paper's code, which is not public):

In EDM coordinates (x̂ = x / α, r = σ / α, so x̂_r = x0 + r ε), a solver that evaluates the denoiser
D at r_i and holds it over [r_{i+1}, r_i] has, for the reverse SDE, the bound

    KLUB(r_0 .. r_n) ∝ Σ_i ∫_{r_{i+1}}^{r_i} r^{-3} E_{x0, ε} || D(x0 + r ε, r) - D(x0 + r_i ε, r_i) ||² dr,

estimated by Monte Carlo with fixed (x0, c, ε) draws (common random numbers) and Gauss-Legendre
quadrature in log r. The ends r_0 (largest) and r_n (smallest, before the final jump to 0) stay
fixed; the interior times are improved one at a time by a search over a log-spaced set of candidates
between their neighbours, for a few sweeps (the paper's iterative refinement, in spirit).
"""
from __future__ import annotations

import numpy as np
import torch


def denoiser_x0(model, process, param: str):
    """D(x̂, r, c): the model's conditional denoised estimate, called in EDM coordinates."""

    @torch.no_grad()
    def D(xh, r, c):
        t = torch.tensor([process.t_of_ratio(float(r))] * len(xh), dtype=torch.float64)
        a = process.alpha(t).reshape(-1, *([1] * (xh.dim() - 1))).to(xh.dtype)
        x = a * xh
        x0, _ = process.split(model(x, t.to(xh.dtype), c).to(xh.dtype), x, t, param)
        return x0.to(xh.dtype)
    return D


def klub_terms(D, rs: list, x0, c, eps, quad: int = 6) -> np.ndarray:
    """The n interval terms of KLUB for decreasing ratios rs = [r_0, ..., r_n] (r_n > 0)."""
    nodes, weights = np.polynomial.legendre.leggauss(quad)
    out = []
    for hi, lo in zip(rs[:-1], rs[1:]):
        d_hi = D(x0 + hi * eps, hi, c)
        a, b = np.log(lo), np.log(hi)
        total = 0.0
        for u, w in zip(nodes, weights):
            r = float(np.exp(0.5 * (b - a) * u + 0.5 * (a + b)))
            diff = (D(x0 + r * eps, r, c) - d_hi).flatten(1).pow(2).sum(1).mean().item()
            total += 0.5 * (b - a) * w * diff * r ** -2  # r^-3 dr = r^-2 d log r
        out.append(total)
    return np.array(out)


def optimize(D, rs: list, x0, c, eps, sweeps: int = 3, candidates: int = 9, quad: int = 6):
    """Coordinate search on the interior ratios; returns (ratios, KLUB before, KLUB after)."""
    rs = [float(r) for r in rs]
    start = float(klub_terms(D, rs, x0, c, eps, quad).sum())
    for _ in range(sweeps):
        for i in range(1, len(rs) - 1):
            grid = np.exp(np.linspace(np.log(rs[i + 1]), np.log(rs[i - 1]), candidates + 2)[1:-1])
            best, best_v = rs[i], None
            for r in [rs[i], *grid]:
                v = klub_terms(D, [rs[i - 1], r, rs[i + 1]], x0, c, eps, quad).sum()
                if best_v is None or v < best_v - 1e-12:
                    best, best_v = float(r), v
            rs[i] = best
    return rs, start, float(klub_terms(D, rs, x0, c, eps, quad).sum())
