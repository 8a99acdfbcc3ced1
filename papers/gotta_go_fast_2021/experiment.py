"""gotta_go_fast_2021: one row = one reverse-SDE solver setting, one seed. Unconditional samples of a
Gaussian mixture in `dim` dimensions with the exact ε (common.diffusion.mixture: a perfect model, so
every error is the solver's), by Euler-Maruyama on a uniform grid or by the adaptive solver
(common.diffusion.sde), each ending with the denoising step. Scored by the exact log-density of the
samples under the data, the sliced W2 to exact samples, and the ε evaluations per sample."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optrepro.config import BaseConfig
from optrepro.diffusion.metrics import sliced_wasserstein
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.process import Process
from optrepro.diffusion.sde import adaptive_sample, em_sample
from optrepro.errors import ConfigError

SOLVERS = ("em", "adaptive")


@dataclass
class Config(BaseConfig):
    dim: int = 256
    n_modes: int = 8
    radius: float = 2.0
    std: float = 0.3
    mixture_seed: int = 123
    """The mixture is the same for every seed; the seed draws the initial noise and the solver's noise."""
    samples: int = 400
    solver: str = "adaptive"
    steps: int = 1000
    """em: uniform steps from t = 1 to t_end."""
    eps_rel: float = 0.02
    eps_abs: float = 0.01
    exponent: float = 0.9
    safety: float = 0.9
    h_init: float = 0.01
    t_end: float = 1e-3


def preflight(cfg: Config) -> None:
    if cfg.solver not in SOLVERS:
        raise ConfigError(f"solver '{cfg.solver}' unknown; valid: {', '.join(SOLVERS)}")
    if cfg.dim < 1 or cfg.samples < 2 or cfg.steps < 1 or cfg.n_modes < 1:
        raise ConfigError("dim, steps and n_modes must be >= 1 and samples >= 2")
    if not (cfg.eps_rel > 0 and cfg.eps_abs > 0 and 0 < cfg.safety <= 1 and cfg.exponent > 0 and cfg.h_init > 0):
        raise ConfigError("eps_rel, eps_abs, exponent and h_init must be > 0 and safety in (0, 1]")
    if not 0 < cfg.t_end < 1:
        raise ConfigError(f"t_end must be in (0, 1), got {cfg.t_end}")


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("sampling takes seconds")
    mix = GaussianMixture.sphere(cfg.dim, cfg.n_modes, cfg.radius, cfg.std, n_classes=1, seed=cfg.mixture_seed)
    process = Process("vp")
    model = ExactDenoiser(mix, process, "eps")
    null = torch.full((cfg.samples,), mix.n_classes)

    def eps_fn(x, t):
        return model(x, t, null[: len(x)])

    gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    x = torch.randn(cfg.samples, cfg.dim, generator=gen, dtype=torch.float64)
    if cfg.solver == "em":
        x0, info = em_sample(eps_fn, process, x, cfg.steps, gen, t_end=cfg.t_end)
    else:
        x0, info = adaptive_sample(eps_fn, process, x, gen, eps_rel=cfg.eps_rel, eps_abs=cfg.eps_abs, r=cfg.exponent,
                                   theta=cfg.safety, h_init=cfg.h_init, t_end=cfg.t_end)
    ref = mix.sample(null, torch.Generator().manual_seed(20_000 + cfg.seed))
    out = {"loglik": float(mix.log_prob(x0, null).mean()), "loglik_exact": float(mix.log_prob(ref, null).mean()),
           "sw": sliced_wasserstein(x0, ref, seed=cfg.seed), "nfe": info["nfe"],
           "rejected": info.get("rejected", 0.0)}
    ctx.log(0, **out)
    return out
