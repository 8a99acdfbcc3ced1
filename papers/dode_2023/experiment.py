"""dode_2023: one row = one solver (DDIM, or D-DDIM with λ distilled from a 10x-step DDIM teacher) at N
steps, one seed, on the exact denoiser of a Gaussian mixture in `dim` dimensions (so every error is the
solver's). The λ are fitted on a distillation batch (its own noise, seed 1000 + seed) and the solver is
scored on fresh noise: `ode_err` is the RMS distance per coordinate to a 1000-step DDIM from the same
initial noise (the ODE's solution), `sw` the sliced W2 distance to exact samples of each class."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optrepro.config import BaseConfig
from optrepro.diffusion.dode import ddim, dode_sample, fit_lambdas
from optrepro.diffusion.metrics import classwise_sw
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.models import check_data
from optrepro.diffusion.process import GRIDS, Process
from optrepro.errors import ConfigError

FULL_SCALE = {k: f"a pretrained {k} diffusion model" for k in ("cifar10", "celeba64", "imagenet64", "lsun_bedroom")}


@dataclass
class Config(BaseConfig):
    data: str = "mixture"
    """mixture (GaussianMixture.sphere in `dim` dimensions, its exact denoiser); the paper's image data
    stops with exit 2."""
    dim: int = 64
    solver: str = "ddim"
    """ddim | dode (D-DDIM)."""
    steps: int = 5
    grid: str = "edm"
    scale: int = 10
    """dode: the teacher takes scale x steps."""
    ref_steps: int = 1000
    per_class: int = 250
    distill_per_class: int = 25


def preflight(cfg: Config) -> None:
    check_data(cfg.data, FULL_SCALE, ("mixture",))
    if cfg.solver not in ("ddim", "dode"):
        raise ConfigError(f"solver '{cfg.solver}' unknown; valid: ddim, dode")
    if cfg.grid not in GRIDS or cfg.grid == "custom":
        raise ConfigError(f"grid '{cfg.grid}' unknown; valid: uniform, logsnr, edm")
    Process("vp").grid(cfg.grid, cfg.steps)
    for k in ("dim", "scale", "ref_steps", "per_class", "distill_per_class"):
        v = getattr(cfg, k)
        if isinstance(v, bool) or not isinstance(v, int) or v < (2 if k == "dim" else 1):
            raise ConfigError(f"{k} must be an integer >= {2 if k == 'dim' else 1}, got {v!r}")


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("a run samples for seconds")
    mix = GaussianMixture.sphere(cfg.dim)
    process = Process("vp")
    model = ExactDenoiser(mix, process, "eps")
    times = process.grid(cfg.grid, cfg.steps)
    s0 = float(process.sigma(times[0]))

    def noise(per_class, seed):
        labels = torch.arange(mix.n_classes).repeat_interleave(per_class)
        x = s0 * torch.randn(len(labels), cfg.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return labels, x

    labels, x_init = noise(cfg.per_class, 10_000 + cfg.seed)
    extra = {}
    if cfg.solver == "dode":
        dl, dx = noise(cfg.distill_per_class, 1000 + cfg.seed)
        lam, info = fit_lambdas(model, process, "eps", dl, times, dx, cfg.scale)
        for i, v in enumerate(lam.tolist()):
            ctx.log(i, lam=v)
        x, out = dode_sample(model, process, "eps", labels, times, x_init, lam)
        extra = {"fit_mse": info["fit_mse"], "lam_mean": float(lam[1:].mean()) if len(lam) > 1 else 0.0}
    else:
        x, out = ddim(model, process, "eps", labels, times, x_init)
    ref, _ = ddim(model, process, "eps", labels, process.grid(cfg.grid, cfg.ref_steps), x_init)
    finite = bool(torch.isfinite(x).all())
    result = {
        "ode_err": float(((x - ref) ** 2).mean().sqrt()) if finite else float("nan"),
        "sw": classwise_sw(x, mix.sample(labels, torch.Generator().manual_seed(20_000 + cfg.seed)), labels)
        if finite else float("nan"),
        "loglik": float(mix.log_prob(x, labels).mean()) / cfg.dim if finite else float("nan"),
        "nfe": out["nfe"], **extra}
    ctx.log(cfg.steps, **result)
    return result
