"""Guided sampling, one row and one seed: a conditional model (exact, or trained with label dropout and
cached per seed), a guidance rule, a sampler and a time grid; sample-quality metrics of the result.

Every guidance table of the diffusion-guidance family runs this body (directly, or from a paper's
experiment.py with extra steps such as a schedule search). Each run writes samples.pt (the first
`figure_per_class` samples of each class) for the report's sample figure, and logs per step whatever
its rule traces (AG's cosine similarity, CFG-Zero*'s s*).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from optrepro.config import BaseConfig
from optrepro.diffusion.figures import save_samples
from optrepro.diffusion.guidance import make_rule
from optrepro.diffusion.metrics import digits_metrics, classwise_sw, mixture_metrics
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.models import AtTemperature, ModelSpec, UncondSwap, check_spec, n_classes, trained_denoiser
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import SAMPLERS, sample
from optrepro.errors import ConfigError


@dataclass
class GuidanceConfig(BaseConfig):
    model: ModelSpec = field(default_factory=ModelSpec)
    exact: bool = False
    """Mixture only: sample with the closed-form model instead of a trained one (no training)."""
    snapshot: int = 0
    """Training step of the weights to sample with (0: the last; others must be in model.snapshots)."""
    rule: str = "cfg"
    scale: float = 1.0
    """γ: guided = u + γ (c - u) for CFG (1: conditional only, 0: unconditional only)."""
    rule_args: dict = field(default_factory=dict)
    sampler: str = "ddim"
    grid: str = "uniform"
    steps: int = 50
    times: list = field(default_factory=list)
    """grid: custom only: the steps + 1 decreasing times, ending at 0."""
    per_class: int = 45
    figure_per_class: int = 8
    uncond_from: str = "own"
    """The unconditional branch: own (the model's) | exact (mixture only: the closed-form unconditional
    mixture) | model (`uncond_model`, trained and cached per seed: Unconditional Priors Matter's swap)."""
    uncond_model: ModelSpec = field(default_factory=ModelSpec)
    """uncond_from: model only: the model whose 'no label' prediction replaces the model's own."""
    score_as: str = "class"
    """Mixture only: class (each sample against its intended class) | unconditional (all samples against the
    whole mixture: for unconditional sampling, scale 0)."""
    temperature: float = 0.0
    """GFT models (model.objective: gft) only: sample ε(x | c, β) at β = temperature with one evaluation per
    step (rule cfg at scale 1); its target is CFG at γ = 1 / β (what guided_reference compares with).
    0: not a temperature row."""
    guided_reference: bool = False
    """Mixture only: also sample the exact model under the same rule, sampler, grid and labels, and report
    `sw_guided`, the sliced W2 to those samples: the error due to the model alone (guidance moves even a
    perfect model's samples away from p(x | c), which `sw` measures)."""


UNCOND_FROM = ("own", "exact", "model")
SCORE_AS = ("class", "unconditional")


def preflight(cfg: GuidanceConfig) -> None:
    check_spec(cfg.model)
    if cfg.exact and cfg.model.data != "mixture":
        raise ConfigError("exact: true needs data: mixture (only the mixture has a closed-form model)")
    if cfg.sampler not in SAMPLERS:
        raise ConfigError(f"sampler '{cfg.sampler}' unknown; valid: {', '.join(SAMPLERS)}")
    Process(cfg.model.process).grid(cfg.grid, cfg.steps, cfg.times)
    rule = make_rule(cfg.rule, cfg.scale, cfg.rule_args)
    if rule.needs_uncond and cfg.model.p_uncond == 0 and not cfg.exact:
        raise ConfigError(f"rule '{cfg.rule}' at scale {cfg.scale:g} needs the unconditional prediction, but the "
                          "model is trained without label dropout (model.p_uncond = 0)")
    if cfg.snapshot and cfg.snapshot not in cfg.model.snapshots + [cfg.model.steps]:
        raise ConfigError(f"snapshot {cfg.snapshot} is not kept; model.snapshots = {cfg.model.snapshots}")
    if cfg.uncond_from not in UNCOND_FROM:
        raise ConfigError(f"uncond_from '{cfg.uncond_from}' unknown; valid: {', '.join(UNCOND_FROM)}")
    if cfg.score_as not in SCORE_AS:
        raise ConfigError(f"score_as '{cfg.score_as}' unknown; valid: {', '.join(SCORE_AS)}")
    if cfg.model.data != "mixture" and (cfg.uncond_from == "exact" or cfg.score_as != "class" or cfg.guided_reference):
        raise ConfigError("uncond_from: exact, score_as: unconditional and guided_reference need data: mixture")
    if cfg.uncond_from == "model":
        check_spec(cfg.uncond_model)
        for k in ("data", "process", "param"):
            if getattr(cfg.uncond_model, k) != getattr(cfg.model, k):
                raise ConfigError(f"uncond_model.{k} is {getattr(cfg.uncond_model, k)!r} but model.{k} is "
                                  f"{getattr(cfg.model, k)!r}: the swapped branch must predict the same thing")
        if cfg.uncond_model.p_uncond == 0:
            raise ConfigError("uncond_model has no unconditional branch (p_uncond = 0)")
    if cfg.temperature:
        if cfg.model.objective != "gft" or cfg.exact:
            raise ConfigError("temperature needs a GFT-trained model (model.objective: gft, exact: false)")
        if not 0 < cfg.temperature <= 1 or cfg.rule != "cfg" or cfg.scale != 1.0:
            raise ConfigError(f"temperature must be in (0, 1] with rule cfg at scale 1 (one evaluation per step), got "
                              f"temperature {cfg.temperature}, rule {cfg.rule} at scale {cfg.scale}")
    if cfg.per_class < 2:
        raise ConfigError(f"per_class must be >= 2, got {cfg.per_class}")


def load_model(cfg: GuidanceConfig, ctx):
    """(model, process, info) for a config; trains and caches under the runs root on first use. With
    `uncond_from` other than own, the unconditional branch is swapped (common.diffusion.models.UncondSwap)."""
    process = Process(cfg.model.process)
    root = getattr(ctx, "out_root", None) or Path("runs")
    if cfg.exact:
        net, info = ExactDenoiser(GaussianMixture.ring(), process, cfg.model.param), {"train_loss": 0.0}
    else:
        log = (lambda s, loss: ctx.log(s, train_loss=loss)) if cfg.snapshot in (0, cfg.model.steps) else None
        net, blob = trained_denoiser(cfg.model, cfg.seed, root, cfg.snapshot or None, log=log)
        info = {"train_loss": blob["final_loss"]}
    if cfg.temperature:
        net = AtTemperature(net, cfg.temperature)
    if cfg.uncond_from == "exact":
        net = UncondSwap(net, ExactDenoiser(GaussianMixture.ring(), process, cfg.model.param))
    elif cfg.uncond_from == "model":
        net = UncondSwap(net, trained_denoiser(cfg.uncond_model, cfg.seed, root)[0])
    return net, process, info


def run(cfg: GuidanceConfig, ctx) -> dict:
    model, process, info = load_model(cfg, ctx)
    return sample_and_score(cfg, ctx, model, process, process.grid(cfg.grid, cfg.steps, cfg.times), info)


def sample_and_score(cfg: GuidanceConfig, ctx, model, process, times, extra: dict | None = None) -> dict:
    ctx.no_checkpoint("sampling takes seconds; the denoiser's training resumes inside its cache build")
    mix = GaussianMixture.ring() if cfg.model.data == "mixture" else None
    k = n_classes(cfg.model.data)
    labels = torch.arange(k).repeat_interleave(cfg.per_class)
    gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    rule = make_rule(cfg.rule, cfg.scale, cfg.rule_args)
    shape, dtype = ((2,), torch.float64) if mix else ((1, 8, 8), torch.float32)
    x, info = sample(model, process, cfg.model.param, rule, times, labels, gen, cfg.sampler, shape=shape, dtype=dtype)
    for i, v in enumerate(rule.trace):
        ctx.log(i, trace=v)
    finite = [v for v in rule.trace if v == v]
    trace = {"trace": sum(finite) / len(finite)} if finite else {}  # the per-step series' mean, for result.json
    if mix:
        scored = labels if cfg.score_as == "class" else torch.full_like(labels, k)  # k: "no label", any mode
        out = mixture_metrics(x, scored, mix, torch.Generator().manual_seed(20_000 + cfg.seed))
    else:
        out = digits_metrics(x, labels, getattr(ctx, "out_root", None) or Path("runs"))
    if cfg.guided_reference:
        perfect = ExactDenoiser(mix, process, cfg.model.param)
        target = make_rule("cfg", 1 / cfg.temperature) if cfg.temperature else make_rule(cfg.rule, cfg.scale, cfg.rule_args)
        ref, _ = sample(perfect, process, cfg.model.param, target, times,
                        labels, torch.Generator().manual_seed(30_000 + cfg.seed), cfg.sampler, shape=shape, dtype=dtype)
        out["sw_guided"] = classwise_sw(x, ref, labels) if torch.isfinite(x).all() else float("nan")
    save_samples(ctx.dir, x, labels, cfg.figure_per_class, cfg.model.data)
    result = {**out, "nfe": info["nfe"], **(extra or {})}
    ctx.log(len(times) - 1, **result)  # the final metrics close metrics.jsonl (after any per-step trace)
    return {**result, **trace}
