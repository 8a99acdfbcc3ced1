"""ays_2024: one row = one time grid (uniform, log-SNR, EDM ρ = 7, or KLUB-optimized from one of them)
at n steps, one seed; DDIM sampling with the exact mixture model or the trained digits model, scored
by common.tasks.guidance, plus each grid's KLUB under the same Monte-Carlo draws."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch


from optrepro.diffusion.figures import samples_figure as report_extra  # noqa: F401  (the report's sample figure)
from optrepro.diffusion.mixture import GaussianMixture
from optrepro.diffusion.models import digits_tensors
from optrepro.errors import ConfigError
from optrepro.io import atomic_write_text
from optrepro.tasks import guidance
from optrepro.papers.ays_2024.method import denoiser_x0, klub_terms, optimize


@dataclass
class Config(guidance.GuidanceConfig):
    optimize: bool = False
    """Replace the interior times of `grid` by KLUB-optimized ones (the grid is the starting point)."""
    opt_samples: int = 64
    opt_sweeps: int = 3
    opt_candidates: int = 9
    opt_quad: int = 6


def preflight(cfg: Config) -> None:
    guidance.preflight(cfg)
    if cfg.optimize and cfg.steps < 2:
        raise ConfigError("optimize needs steps >= 2 (there is no interior time to move at 1 step)")
    if min(cfg.opt_samples, cfg.opt_sweeps, cfg.opt_candidates, cfg.opt_quad) < 1:
        raise ConfigError("opt_samples, opt_sweeps, opt_candidates and opt_quad must be >= 1")


def _draws(cfg: Config):
    g = torch.Generator().manual_seed(30_000 + cfg.seed)
    if cfg.model.data == "mixture":
        mix = GaussianMixture.ring()
        c = torch.randint(0, mix.n_classes, (cfg.opt_samples,), generator=g)
        x0 = mix.sample(c, g)
    else:
        x, y = digits_tensors("train")
        idx = torch.randperm(len(x), generator=g)[: cfg.opt_samples]
        x0, c = x[idx], y[idx]
    return x0, c, torch.randn(x0.shape, generator=g, dtype=x0.dtype)


def run(cfg: Config, ctx) -> dict:
    model, process, info = guidance.load_model(cfg, ctx)
    times = process.grid(cfg.grid, cfg.steps, cfg.times)
    D = denoiser_x0(model, process, cfg.model.param)
    x0, c, eps = _draws(cfg)
    t_first = min(float(times[0]), 1 - 1e-3)
    rs = [float(process.noise_ratio(t_first))] + [float(process.noise_ratio(t)) for t in times[1:-1]] + \
         [float(process.noise_ratio(process.t_range()[0] or 1e-3))]
    extra = {**info}
    if cfg.optimize:
        rs, before, after = optimize(D, rs, x0, c, eps, cfg.opt_sweeps, cfg.opt_candidates, cfg.opt_quad)
        times = torch.tensor([float(times[0])] + [process.t_of_ratio(r) for r in rs[1:-1]] + [0.0],
                             dtype=torch.float64)
        extra["klub_start"], extra["klub"] = before, after
    else:
        extra["klub"] = float(klub_terms(D, rs, x0, c, eps, cfg.opt_quad).sum())
    atomic_write_text(Path(ctx.dir) / "schedule.json", json.dumps({"t": times.tolist(), "sigma_over_alpha": rs}))
    return guidance.sample_and_score(cfg, ctx, model, process, times, extra)
