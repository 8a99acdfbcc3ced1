"""tfg_2024: one row = one training-free guidance method (a setting of TFG) and its hyper-parameter search,
one seed. The unconditional model is the exact Gaussian-mixture denoiser and the predictor the exact
classifier log p(c | x0), so the ideal guided sampler draws exactly from p(x | c) and every gap to it is
the guidance method's. The search (the paper's beam search, on the active hyper-parameters only) scores
each setting on `tune_per_class` samples per class drawn with a tuning seed (1000 + seed), by the sliced
W2 distance to exact class-conditional samples; the chosen setting then samples `per_class` per class
with the evaluation seed. Every evaluated setting and its score are logged (metrics.jsonl)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from optrepro.config import BaseConfig
from optrepro.diffusion.figures import samples_figure as report_extra  # noqa: F401  (the report's sample figure)
from optrepro.diffusion.figures import save_samples
from optrepro.diffusion.metrics import class_accuracy, classwise_sw, mixture_metrics
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.models import check_data
from optrepro.diffusion.guidance import CFG
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import sample
from optrepro.diffusion.tfg import SEARCHABLE, TFGParams, beam_search, tfg_sample
from optrepro.errors import ConfigError

FULL_SCALE = {k: f"a pretrained {k} diffusion model and its classifier" for k in ("cifar10", "imagenet", "celeba")}


@dataclass
class Config(BaseConfig):
    data: str = "mixture"
    """mixture (GaussianMixture.ring with the exact denoiser and classifier); the paper's image data stops
    with exit 2."""
    process: str = "vp"
    sampler: str = "ddpm"
    """ddpm (ancestral, the paper's) | ddim."""
    steps: int = 50
    params: TFGParams = field(default_factory=TFGParams)
    """The setting; with `search`, the start of the search (searched values must start > 0)."""
    search: list = field(default_factory=list)
    """Hyper-parameters the beam search doubles (a subset of rho, mu, sigma), starting from `params`; the
    others of rho, mu, sigma are set to 0. [] = use `params` as given."""
    conditional: bool = False
    """Sample the exact class-conditional model instead (no guidance): the ideal every method aims at."""
    budget: int = 12
    """Settings the search may evaluate."""
    beam: int = 2
    tune_per_class: int = 100
    per_class: int = 500
    figure_per_class: int = 150


def preflight(cfg: Config) -> None:
    check_data(cfg.data, FULL_SCALE, ("mixture",))
    Process(cfg.process).grid("uniform", cfg.steps)
    if cfg.sampler not in ("ddpm", "ddim"):
        raise ConfigError(f"sampler '{cfg.sampler}' unknown; valid: ddpm, ddim")
    cfg.params.check()
    if cfg.search:
        beam_search(lambda q: 0.0, list(cfg.search), start(cfg), 1, cfg.beam)  # validates names and start values
        if cfg.budget < 1:
            raise ConfigError(f"budget must be >= 1, got {cfg.budget}")
    if cfg.per_class < 2 or cfg.tune_per_class < 2:
        raise ConfigError("per_class and tune_per_class must be >= 2")


def start(cfg: Config) -> TFGParams:
    """The search's first setting: `params` with the hyper-parameters not searched set to 0."""
    return TFGParams(**{**asdict(cfg.params), **{k: 0.0 for k in SEARCHABLE if k not in cfg.search}})


def _draw(cfg, mix, process, params, per_class, seed):
    labels = torch.arange(mix.n_classes).repeat_interleave(per_class)
    model = ExactDenoiser(mix, process, "eps")
    if cfg.conditional:
        x, info = sample(model, process, "eps", CFG(1.0), process.grid("uniform", cfg.steps), labels,
                         torch.Generator().manual_seed(seed), cfg.sampler, shape=(2,), dtype=torch.float64)
        return x, labels, info

    def log_f(x0):  # [k n, 2] -> [k n]: the k Monte Carlo copies of the n samples, in order
        return mix.class_log_posterior(x0, labels.repeat(len(x0) // len(labels)))

    x, info = tfg_sample(model, process, "eps", log_f, process.grid("uniform", cfg.steps), len(labels),
                         torch.Generator().manual_seed(seed), params, ancestral=cfg.sampler == "ddpm", shape=(2,))
    return x, labels, info


def _sw(mix, x, labels, seed):
    if not torch.isfinite(x).all():
        return float("nan")
    return classwise_sw(x, mix.sample(labels, torch.Generator().manual_seed(seed)), labels)


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("a run samples for seconds; the search is repeated from its tuning seed")
    mix, process = GaussianMixture.ring(), Process(cfg.process)
    params = TFGParams(rho=0.0, mu=0.0, sigma=0.0) if cfg.conditional else start(cfg) if cfg.search else cfg.params
    if cfg.search:
        def score(q):
            x, labels, _ = _draw(cfg, mix, process, q, cfg.tune_per_class, 1000 + cfg.seed)
            return _sw(mix, x, labels, 2000 + cfg.seed)
        params, log = beam_search(score, list(cfg.search), params, cfg.budget, cfg.beam)
        for i, (q, s) in enumerate(log):
            ctx.log(i, search_sw=s, **{k: q[k] for k in SEARCHABLE})
    x, labels, info = _draw(cfg, mix, process, params, cfg.per_class, 10_000 + cfg.seed)
    out = mixture_metrics(x, labels, mix, torch.Generator().manual_seed(20_000 + cfg.seed))
    out["accuracy"] = class_accuracy(x, labels, mix)
    save_samples(ctx.dir, x, labels, cfg.figure_per_class, "mixture")
    result = {**out, "nfe": info["nfe"], **{k: float(getattr(params, k)) for k in SEARCHABLE}}
    ctx.log(cfg.steps, **result)
    return result
