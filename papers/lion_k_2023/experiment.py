"""One row, one seed: Lion-K with weight decay lambda on a least-squares problem whose unconstrained
solution lies far outside the constraint set, against the composite problem's solution computed
independently.

f(x) = ||A x - b||^2 / (2n), A an n x d Gaussian matrix, b = A x_true + noise with x_true ~ N(0, 9 I)
(so the least-squares solution has entries near 3, outside a box of radius 1/lambda <= 2). Lion-K
starts from x0 ~ N(0, 16 I), outside the constraint set, full-batch gradients, float64, `steps`
steps with the learning rate decayed linearly from `lr` to 0 (a constant rate only reaches a
neighbourhood of width ~lr).

The reference solution x*, by K: l1: bounded least squares (scipy's lsq_linear, bounds +-1/lambda);
l2: the ridge path x(mu) = (A'A/n + mu I)^-1 A'b/n at the mu with ||x(mu)|| = 1/lambda (bisection);
quadratic: ridge with mu = lambda.

Metrics: `rel_gap` ||x_T - x*|| / ||x*||; `violation` max(0, lambda N(x_T) - 1) with N the l_inf
norm for l1 and l2 norm for l2 (0 for quadratic, which has no constraint); `ls_gap`, the same
relative distance to the unconstrained least-squares solution (the constraint is active: Lion-K
does not find it); `steps_to_feasible`, the first step with lambda N(x) <= 1.01 (the end of the
transient, to within the oscillation a sign step leaves). The relative gap is logged along the way."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import lsq_linear

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError

from . import method


@dataclass
class LionKConfig(BaseConfig):
    k: str = "l1"
    """l1 (Lion), l2 or quadratic."""
    weight_decay: float = 1.0
    lr: float = 0.01
    betas: tuple = (0.9, 0.99)
    steps: int = 4000
    n: int = 200
    dim: int = 20


def preflight(cfg: LionKConfig) -> None:
    if cfg.k not in method.KS:
        raise ConfigError(f"k must be one of {', '.join(method.KS)}, got {cfg.k!r}")
    if not cfg.weight_decay > 0:
        raise ConfigError(f"weight_decay (lambda) must be > 0: it sets the constraint 1/lambda, got {cfg.weight_decay}")
    if not cfg.lr > 0 or cfg.steps < 1:
        raise ConfigError(f"lr must be > 0 and steps >= 1, got lr={cfg.lr} steps={cfg.steps}")
    if cfg.n < cfg.dim or cfg.dim < 1:
        raise ConfigError(f"n >= dim >= 1 needed (a strongly convex least-squares problem), got n={cfg.n} dim={cfg.dim}")
    try:
        method.LionK([torch.zeros(1)], lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, k=cfg.k)
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None


def problem(n: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed * 7919 + 17)
    A = torch.randn(n, dim, generator=g, dtype=torch.float64)
    x_true = 3.0 * torch.randn(dim, generator=g, dtype=torch.float64)
    b = A @ x_true + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    x0 = 4.0 * torch.randn(dim, generator=g, dtype=torch.float64)
    return A, b, x0


def ridge(A: torch.Tensor, b: torch.Tensor, mu: float) -> torch.Tensor:
    n, d = A.shape
    return torch.linalg.solve(A.T @ A / n + mu * torch.eye(d, dtype=A.dtype), A.T @ b / n)


def constraint_norm(k: str, x: torch.Tensor) -> float:
    return float(x.abs().max()) if k == "l1" else float(x.norm()) if k == "l2" else 0.0


def reference_solution(k: str, A: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin f(x) + K*(lam x) / lam, computed without Lion."""
    if k == "quadratic":
        return ridge(A, b, lam)
    r = 1.0 / lam
    if k == "l1":
        n = A.shape[0]
        res = lsq_linear((A / np.sqrt(n)).numpy(), (b / np.sqrt(n)).numpy(), bounds=(-r, r), method="bvls",
                         tol=1e-14, lsmr_tol="auto")
        return torch.as_tensor(res.x, dtype=A.dtype)
    x = ridge(A, b, 0.0)
    if float(x.norm()) <= r:
        return x
    lo, hi = 0.0, 1.0
    while float(ridge(A, b, hi).norm()) > r:
        hi *= 2
    for _ in range(200):  # ||x(mu)|| decreases in mu
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(ridge(A, b, mid).norm()) > r else (lo, mid)
    return ridge(A, b, hi)


def run(cfg: LionKConfig, ctx) -> dict:
    ctx.no_checkpoint("4,000 full-batch steps on a 200 x 20 problem: a second")
    A, b, x0 = problem(cfg.n, cfg.dim, cfg.seed)
    lam = cfg.weight_decay
    x_star = reference_solution(cfg.k, A, b, lam)
    x_ls = ridge(A, b, 0.0)
    x = x0.clone().requires_grad_()
    opt = method.LionK([x], lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=lam, k=cfg.k)
    feasible_at = None if cfg.k != "quadratic" else 0
    for t in range(1, cfg.steps + 1):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * (1 - (t - 1) / cfg.steps)
        opt.zero_grad()
        loss = ((A @ x - b) ** 2).sum() / (2 * cfg.n)
        loss.backward()
        opt.step()
        with torch.no_grad():
            if feasible_at is None and lam * constraint_norm(cfg.k, x) <= 1.01:
                feasible_at = t
            if t % 50 == 0 or t == 1:
                ctx.log(t, rel_gap=float((x - x_star).norm() / x_star.norm()), loss=float(loss))
    xd = x.detach()
    return {"rel_gap": float((xd - x_star).norm() / x_star.norm()),
            "violation": max(0.0, lam * constraint_norm(cfg.k, xd) - 1.0),
            "ls_gap": float((xd - x_ls).norm() / x_ls.norm()),
            "steps_to_feasible": float(feasible_at if feasible_at is not None else cfg.steps + 1)}
