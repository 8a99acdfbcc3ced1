"""gps_2024's tables. `quadratic` is defined here; `logreg` runs the shared logistic-regression task
(common.tasks.logreg, methods polyak_momentum and sgdm), named in its config.

quadratic: one row, one seed. f(x) = (x - x*)^T A (x - x*) / 2 in `dim` dimensions, A = Q diag(lam) Q^T
with Q a random orthogonal matrix and lam geometrically spaced from 1/`kappa` to 1 (L = 1, condition
number kappa), x* and x_0 drawn N(0, I) from the seed; f* = 0 is known. Full-batch steps, float64:

- hb:   heavy ball with a fixed step, x_{t+1} = x_t - lr g_t + beta (x_t - x_{t-1}) (torch SGD with
        momentum; lr is in units of 1/L = 1);
- alr:  the Polyak step for momentum (method.py), form mag (ALR-SMAG at full batch) or hb.

Metrics: `log10_gap`, log10(f(x_T) - f*); `log10_best_gap`, its minimum over the path; `increase_frac`,
the fraction of steps where f went up (the heavy ball's oscillation). The gap is logged along the way."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError, Diverged

from . import method

METHODS = ("hb", "alr")


@dataclass
class QuadraticConfig(BaseConfig):
    method: str = "alr"
    """hb (fixed step) | alr (Polyak step for momentum)."""
    form: str = "mag"
    """alr only: mag (ALR-SMAG's rule) | hb (the heavy-ball step)."""
    beta: float = 0.9
    """the momentum parameter."""
    lr: float = 1.0
    """hb: the fixed step in units of 1/L; alr: the multiplier of the Polyak step (1: the paper's)."""
    c: float = 1.0
    """alr: the constant c in (f - f*) / (c ||d||^2)."""
    dim: int = 100
    kappa: float = 1000.0
    """condition number of A (eigenvalues from 1/kappa to 1)."""
    steps: int = 500
    log_every: int = 10


Config = QuadraticConfig


def preflight(cfg: QuadraticConfig) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.form not in method.MOMENTUM_FORMS:
        raise ConfigError(f"form must be one of {', '.join(method.MOMENTUM_FORMS)}, got {cfg.form!r}")
    if not 0 <= cfg.beta < 1:
        raise ConfigError(f"beta must be in [0, 1), got {cfg.beta}")
    if not (cfg.lr > 0 and cfg.c > 0):
        raise ConfigError(f"lr and c must be > 0, got lr={cfg.lr} c={cfg.c}")
    if cfg.dim < 2 or cfg.kappa < 1 or cfg.steps < 1 or cfg.log_every < 1:
        raise ConfigError(f"need dim >= 2, kappa >= 1, steps >= 1, log_every >= 1; got dim={cfg.dim} "
                          f"kappa={cfg.kappa} steps={cfg.steps} log_every={cfg.log_every}")


def problem(cfg: QuadraticConfig):
    """(A, x_star, x0) as float64 tensors, drawn from the seed."""
    g = np.random.default_rng(int(cfg.seed))
    Q, _ = np.linalg.qr(g.standard_normal((cfg.dim, cfg.dim)))
    lam = np.geomspace(1.0 / cfg.kappa, 1.0, cfg.dim)
    A = (Q * lam) @ Q.T
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return t((A + A.T) / 2), t(g.standard_normal(cfg.dim)), t(g.standard_normal(cfg.dim))


def run(cfg: QuadraticConfig, ctx) -> dict:
    ctx.no_checkpoint("a 100-dimensional quadratic: well under a second")
    A, xs, x0 = problem(cfg)
    x = x0.clone().requires_grad_(True)

    def f() -> torch.Tensor:
        r = x - xs
        return 0.5 * r @ (A @ r)

    if cfg.method == "hb":
        opt = torch.optim.SGD([x], lr=cfg.lr, momentum=cfg.beta)
    else:
        opt = method.alr([x], beta=cfg.beta, form=cfg.form, c=cfg.c, lr=cfg.lr)

    def log10(v: float) -> float:
        return math.log10(max(v, 1e-300))

    with torch.no_grad():
        prev, ups, best = float(f()), 0, math.inf
    for step in range(cfg.steps):
        if cfg.method == "hb":
            opt.zero_grad()
            f().backward()
            opt.step()
        else:
            opt.step(f)
        with torch.no_grad():
            now = float(f())
        if not math.isfinite(now):
            raise Diverged(step + 1, "f", now)
        ups += now > prev
        prev, best = now, min(best, now)
        if (step + 1) % cfg.log_every == 0:
            ctx.log(step + 1, log10_gap=log10(now))
    return {"log10_gap": log10(prev), "log10_best_gap": log10(best), "increase_frac": ups / cfg.steps}
