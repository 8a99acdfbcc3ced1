"""annealing_guidance_2025: one row = one guidance method at one alignment target, one seed.

A label-dropout MLP (cached per seed) on the 2-D Gaussian mixture is the frozen diffusion model; 20 DDIM
steps. The paper compares methods at matched operating points (its Table 1 matches FD-DINOv2 and compares
FID and CLIP). Here each row matches *alignment* and compares *quality*:
- alignment (CLIP's analogue): `align`, the mean log p(c | x) of the samples under the exact classifier;
- quality (FID's analogue): `sw_pooled`, the sliced W2 distance between all samples pooled and as many
  exact data samples (like FID, it does not ask whether a sample has its intended class).
Each method has one knob (CFG: γ; CFG++: w; annealing: λ, with the scheduler trained per seed by the paper's
objective, method.train_scheduler). A row bisects its knob within `knob_range` so that `align` on a tuning
draw (tune_per_class per class, seed 1000 + seed) meets `target`, with the same budget of `budget` sampling
runs for every method; the knob whose tuning `align` is nearest the target then samples per_class per class
with the evaluation seed. `target: null` samples at `knob` as given (no search). Every evaluated knob is logged."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from optrepro.config import BaseConfig, require_at_least
from optrepro.diffusion.figures import samples_figure as report_extra  # noqa: F401  (the report's sample figure)
from optrepro.diffusion.figures import save_samples
from optrepro.diffusion.guidance import CFG, CFGPP
from optrepro.diffusion.metrics import class_accuracy, mixture_metrics, sliced_wasserstein
from optrepro.diffusion.mixture import GaussianMixture
from optrepro.diffusion.models import ModelSpec, check_spec, trained_denoiser
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import sample
from optrepro.errors import ConfigError
from optrepro.papers.annealing_guidance_2025.method import Scheduler, scheduled_rule, train_scheduler

METHODS = ("cfg", "cfgpp", "anneal")


@dataclass
class SchedulerSpec:
    hidden: int = 64
    layers: int = 2
    freqs: int = 4
    train_steps: int = 2000
    batch: int = 256
    lr: float = 1e-3
    perturb: dict = field(default_factory=lambda: {"tau": [0.6, 0.9], "scale": 0.25})
    """The prompt perturbation of training ({}: none): condition noise at t >= tau[0], pure noise at t >= tau[1]."""


@dataclass
class Config(BaseConfig):
    model: ModelSpec = field(default_factory=lambda: ModelSpec(width=64, steps=1000))
    steps: int = 20
    method: str = "cfg"
    """cfg (γ) | cfgpp (w) | anneal (λ: the learned scheduler at preference λ)."""
    knob: float = 1.0
    """The method's knob when target is null."""
    target: float | None = None
    """The alignment (mean log p(c | x)) the knob is bisected to meet; null: no search."""
    knob_range: list = field(default_factory=lambda: [1.0, 4.0])
    budget: int = 8
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    tune_per_class: int = 200
    per_class: int = 500
    figure_per_class: int = 150


def preflight(cfg: Config) -> None:
    check_spec(cfg.model)
    if cfg.model.data != "mixture" or cfg.model.arch != "mlp" or cfg.model.param != "eps":
        raise ConfigError("annealing_guidance_2025 runs on the mixture with an ε-prediction MLP (model.data: mixture, "
                          "arch: mlp, param: eps); the paper's SDXL setting is not available offline")
    if not 0 < cfg.model.p_uncond < 1:
        raise ConfigError(f"model.p_uncond must be in (0, 1) (both branches are needed), got {cfg.model.p_uncond}")
    if cfg.method not in METHODS:
        raise ConfigError(f"method '{cfg.method}' unknown; valid: {', '.join(METHODS)}")
    Process(cfg.model.process).grid("uniform", cfg.steps)
    if cfg.steps < 2:
        raise ConfigError("steps must be >= 2 (the scheduler trains on steps whose next time is > 0)")
    lo, hi = (cfg.knob_range + [None, None])[:2]
    if len(cfg.knob_range) != 2 or not 0 <= lo < hi:
        raise ConfigError(f"knob_range must be [low, high] with 0 <= low < high, got {cfg.knob_range}")
    if cfg.method == "anneal" and ((cfg.target is not None and hi > 1) or not 0 <= cfg.knob <= 1):
        raise ConfigError("anneal's knob is λ in [0, 1] (knob, and knob_range when a target is searched)")
    require_at_least(cfg, ("budget", "per_class", "tune_per_class"), 2)  # budget: both ends of knob_range
    p = cfg.scheduler.perturb
    if p and not (set(p) == {"tau", "scale"} and len(p["tau"]) == 2 and 0 <= p["tau"][0] < p["tau"][1] <= 1
                  and p["scale"] >= 0):
        raise ConfigError(f"scheduler.perturb must be {{}} or {{tau: [t1, t2], scale}} with 0 <= t1 < t2 <= 1, "
                          f"scale >= 0; got {p}")


def align_score(mix: GaussianMixture, x, labels) -> float:
    """Mean log p(c | x) under the exact classifier: how strongly the samples carry their class."""
    if not torch.isfinite(x).all():
        return float("nan")
    return float(mix.class_log_posterior(x, labels).mean())


def _rule(cfg, knob, scheduler):
    if cfg.method == "cfg":
        return CFG(knob)
    if cfg.method == "cfgpp":
        return CFGPP(knob)
    return scheduled_rule(scheduler, knob)


def _draw(cfg, net, process, mix, knob, scheduler, per_class, seed):
    labels = torch.arange(mix.n_classes).repeat_interleave(per_class)
    rule = _rule(cfg, knob, scheduler)
    x, info = sample(net, process, "eps", rule, process.grid("uniform", cfg.steps), labels,
                     torch.Generator().manual_seed(seed), "ddim", shape=(2,), dtype=torch.float64)
    return x, labels, info, rule


def bisect(f, lo: float, hi: float, target: float, budget: int):
    """The knob in [lo, hi] whose f (assumed increasing) is nearest `target`, within `budget` evaluations of f:
    both ends first (an end is the answer when the target lies beyond it), then bisection. Returns
    (knob, [(knob, f(knob)), ...])."""
    log = [(hi, f(hi))]
    if not log[0][1] > target:
        return hi, log
    log.append((lo, f(lo)))
    if not log[1][1] < target:
        return lo, log
    a, b = lo, hi
    while len(log) < budget:
        m = 0.5 * (a + b)
        v = f(m)
        log.append((m, v))
        if v != v:  # NaN: treat as past the target (too strong)
            b = m
        elif v < target:
            a = m
        else:
            b = m
    finite = [(k, v) for k, v in log if v == v]
    return min(finite, key=lambda kv: abs(kv[1] - target))[0], log


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("the scheduler trains in seconds; the denoiser's training resumes inside its cache build")
    root = getattr(ctx, "out_root", None) or Path("runs")
    net, blob = trained_denoiser(cfg.model, cfg.seed, root)
    mix, process = GaussianMixture.ring(), Process(cfg.model.process)
    null = mix.n_classes
    scheduler = None
    if cfg.method == "anneal":
        s = cfg.scheduler
        torch.manual_seed(cfg.seed)  # the scheduler's initialisation
        scheduler = Scheduler(hidden=s.hidden, layers=s.layers, freqs=s.freqs)

        def draw(n, gen):
            c = torch.randint(0, mix.n_classes, (n,), generator=gen)
            return mix.sample(c, gen), c
        train_scheduler(net, process, draw, process.grid("uniform", cfg.steps), null, s.train_steps, s.batch, s.lr,
                        torch.Generator().manual_seed(500 + cfg.seed), scheduler=scheduler, perturb=s.perturb or None,
                        log=lambda step, **kv: ctx.log(step, **{f"sched_{k}": v for k, v in kv.items()}))
    knob = cfg.knob
    if cfg.target is not None:
        def tune(k):
            x, labels, _, _ = _draw(cfg, net, process, mix, k, scheduler, cfg.tune_per_class, 1000 + cfg.seed)
            return align_score(mix, x, labels)
        knob, log = bisect(tune, *cfg.knob_range, cfg.target, cfg.budget)
        for i, (k, v) in enumerate(log):
            ctx.log(i, search_knob=k, search_align=v)
    x, labels, info, rule = _draw(cfg, net, process, mix, knob, scheduler, cfg.per_class, 10_000 + cfg.seed)
    out = mixture_metrics(x, labels, mix, torch.Generator().manual_seed(20_000 + cfg.seed))
    finite = bool(torch.isfinite(x).all())
    ref = mix.sample(labels, torch.Generator().manual_seed(30_000 + cfg.seed))
    out["sw_pooled"] = sliced_wasserstein(x, ref) if finite else float("nan")
    out["align"] = align_score(mix, x, labels)
    out["accuracy"] = class_accuracy(x, labels, mix)
    if cfg.method == "anneal":
        for i, w in enumerate(rule.trace):
            ctx.log(i, w=w)
        out["mean_w"] = sum(rule.trace) / len(rule.trace)
    elif cfg.method == "cfgpp":
        out["mean_w"] = knob
    save_samples(ctx.dir, x, labels, cfg.figure_per_class, "mixture")
    result = {**out, "knob": float(knob), "nfe": info["nfe"], "train_loss": blob["final_loss"]}
    ctx.log(cfg.steps, **result)
    return result
