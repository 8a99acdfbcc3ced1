"""One row, one seed: LR+GD with step size `gamma` (or the batch perceptron, `perceptron: true`) on a
synthetic linearly separable dataset drawn from the seed, run until every point is classified
correctly or `max_iters`.

Metrics: `iters_to_separate` (the first iteration with every margin positive; max_iters + 1 when it
never happens); `log10_peak_loss`, the largest logistic loss along the way (iterations 1 to the one
before separation): the paper's "larger step sizes lead to higher losses" while separating sooner;
`log10_loss_at_separation` (at the separating iterate, where a large step's loss is already tiny;
absent when the run never separates) and `separated` (1/0)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError

from . import method


@dataclass
class PerceptronConfig(BaseConfig):
    n: int = 500
    """Points."""
    dim: int = 50
    margin: float = 0.05
    """Points with |<a, w*>| below this (w* a unit vector, a ~ N(0, I)) are redrawn: the data's margin."""
    gamma: float = 1.0
    """LR+GD step size."""
    perceptron: bool = False
    """Run the batch perceptron (the gamma -> infinity limit) instead of LR+GD."""
    max_iters: int = 20000


def preflight(cfg: PerceptronConfig) -> None:
    if cfg.n < 2 or cfg.dim < 1 or cfg.max_iters < 1:
        raise ConfigError(f"n >= 2, dim >= 1 and max_iters >= 1 needed, got n={cfg.n} dim={cfg.dim} "
                          f"max_iters={cfg.max_iters}")
    if not cfg.perceptron and not cfg.gamma > 0:
        raise ConfigError(f"gamma must be > 0, got {cfg.gamma}")
    if not 0 < cfg.margin < 1:
        raise ConfigError(f"margin must be in (0, 1) (points are N(0, I)), got {cfg.margin}")


def separable_data(n: int, dim: int, margin: float, seed: int):
    """(A, y): n points a ~ N(0, I_dim) with |<a, w*>| >= margin, labels sign(<a, w*>), float64."""
    g = torch.Generator().manual_seed(seed * 7919 + 3)
    w_star = torch.randn(dim, generator=g, dtype=torch.float64)
    w_star /= w_star.norm()
    rows = []
    while sum(len(r) for r in rows) < n:
        a = torch.randn(4 * n, dim, generator=g, dtype=torch.float64)
        rows.append(a[(a @ w_star).abs() >= margin])
    A = torch.cat(rows)[:n]
    return A, torch.sign(A @ w_star)


def run(cfg: PerceptronConfig, ctx) -> dict:
    ctx.no_checkpoint("full-batch iterations on a 500 x 50 matrix: a second at most")
    A, y = separable_data(cfg.n, cfg.dim, cfg.margin, cfg.seed)
    steps = (method.batch_perceptron(A, y, cfg.max_iters) if cfg.perceptron
             else method.lr_gd(A, y, cfg.gamma, cfg.max_iters))
    hit, loss_hit, peak = None, None, -math.inf
    for t, w in steps:
        if t == 0:
            continue
        m = method.margins(A, y, w)  # once per iterate: the loss, the test and the log all read it
        loss, sep = method.loss_of_margins(m), bool(m.min() > 0)
        if sep or (t & (t - 1)) == 0:  # log-spaced records for the figure, and the separating iterate
            ctx.log(t, log10_loss=math.log10(max(loss, 1e-300)), misclassified=int((m <= 0).sum()))
        if sep:
            hit, loss_hit = t, loss
            break
        peak = max(peak, loss)
    if peak == -math.inf:  # separated at the first iterate: its loss is the only one along the way
        peak = loss_hit
    out = {"iters_to_separate": float(hit if hit is not None else cfg.max_iters + 1), "separated": float(hit is not None),
           "log10_peak_loss": math.log10(max(peak, 1e-300))}
    if hit is not None:
        out["log10_loss_at_separation"] = math.log10(max(loss_hit, 1e-300))
    return out
