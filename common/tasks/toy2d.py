"""Optimizer trajectories on 2-D test functions: distance to the known minimizer after N steps."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from optrepro.config import BaseConfig
from optrepro.data import FUNCTIONS
from optrepro.errors import ConfigError
from optrepro.optim import OptimConfig, build_optimizer, check
from optrepro.run import RunContext

ESCAPE = 1e3
"""A trajectory that leaves |x|,|y| < ESCAPE or becomes non-finite is stopped and scored at this distance."""


@dataclass
class Toy2DConfig(BaseConfig):
    functions: list = field(default_factory=lambda: ["abs", "abs_ill", "quad_ill", "beale", "rosenbrock"])
    """Names from common.data.toy2d.FUNCTIONS."""
    steps: int = 500
    start_noise: float = 0.1
    """Std of the seeded Gaussian perturbation of each function's default start."""
    log_every: int = 10
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-2))


def preflight(cfg: Toy2DConfig) -> None:
    for f in cfg.functions:
        if f not in FUNCTIONS:
            from optrepro.config import closest
            raise ConfigError(f"unknown toy function '{f}'{closest(f, FUNCTIONS)}; valid: {', '.join(FUNCTIONS)}")
    check(cfg.optim)


def run(cfg: Toy2DConfig, ctx: RunContext) -> dict:
    ctx.no_checkpoint("a few thousand steps on 2-D functions: seconds")
    g = torch.Generator().manual_seed(cfg.seed)
    out, logs = {}, []
    for name in cfg.functions:
        fn = FUNCTIONS[name]
        xy = (torch.tensor(fn.start, dtype=torch.float64) + cfg.start_noise * torch.randn(2, generator=g,
                                                                                          dtype=torch.float64))
        xy.requires_grad_(True)
        opt = build_optimizer([xy], cfg.optim)
        curve, escaped = [], False
        for step in range(1, cfg.steps + 1):
            opt.zero_grad()
            loss = fn(xy)
            loss.backward()
            opt.step()
            if not torch.isfinite(xy).all() or xy.detach().abs().max() > ESCAPE:
                escaped = True
                break
            if step % cfg.log_every == 0 or step == cfg.steps:
                curve.append((step, fn.dist(xy)))
        d = ESCAPE if escaped else fn.dist(xy)
        out[f"dist_{name}"] = d
        out[f"log10_dist_{name}"] = math.log10(max(d, 1e-12))
        out[f"escaped_{name}"] = float(escaped)
        logs.append(dict(curve))
    out["mean_log10_dist"] = sum(out[f"log10_dist_{n}"] for n in cfg.functions) / len(cfg.functions)
    steps = sorted(set().union(*logs))
    for s in steps:  # one record per step: mean log10 distance over the functions still running
        ds = [math.log10(max(c.get(s, ESCAPE), 1e-12)) for c in logs]
        ctx.log(s, mean_log10_dist=sum(ds) / len(ds))
    return out
