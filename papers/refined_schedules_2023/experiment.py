"""One row, one seed: a classifier trained with SGD under one learning-rate schedule (the shared
classification task, common.tasks.classify), or, with `refine`, the paper's two-pass procedure:

1. train with linear decay at the row's learning rate, recording the minibatch gradient's l2 norm
   (all parameters together) before every optimizer step;
2. map the norms to the refined schedule (method.refine: median filter, then
   w_t ∝ ||g_t||^-2 sum_{p>t} ||g_p||^-2, peak 1) and train again from the same initialization and
   minibatch order with it.

The refined row's metrics are those of the second pass; the first pass's are kept with the prefix
`pass1_` (at the same learning rate and seed it is the `linear` row's run, which a test checks), and
`warmup_frac`, the fraction of steps before the schedule peaks, says how much warm-up the refinement
found (every other row reports its own schedule's, 0 without warm-up)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.optim.optimizer import register_optimizer_step_pre_hook

from optrepro.errors import ConfigError
from optrepro.optim import lr_factor
from optrepro.run import seed_everything
from optrepro.tasks import classify

from . import method


@dataclass
class RefineConfig(classify.ClassifyConfig):
    refine: bool = False
    """Run the two-pass refinement (the first pass uses linear decay; optim.schedule is ignored)."""
    power: float = 2.0
    """The norm's exponent in the mapping: 2 for SGD (l2 norms), 1 for per-coordinate normalized steps."""
    smooth: float = 0.1
    """The median filter's width as a fraction of the run."""


Config = RefineConfig


def preflight(cfg: RefineConfig) -> None:
    classify.preflight(cfg)
    if not cfg.power > 0 or not 0 <= cfg.smooth < 1:
        raise ConfigError(f"power must be > 0 and smooth in [0, 1), got power={cfg.power} smooth={cfg.smooth}")


def _record_grad_norms(norms: list):
    """A global optimizer pre-step hook appending the l2 norm of every parameter's gradient."""
    def hook(opt, args, kwargs):
        sq = sum(float((p.grad.detach() ** 2).sum()) for g in opt.param_groups for p in g["params"]
                 if p.grad is not None)
        norms.append(sq ** 0.5)
    return register_optimizer_step_pre_hook(hook)


def run(cfg: RefineConfig, ctx) -> dict:
    if not cfg.refine:
        out = classify.run(cfg, ctx)
        T = int(out["steps"])
        out["warmup_frac"] = float(np.argmax([lr_factor(cfg.optim, s, T) for s in range(T)])) / T
        return out
    lr_schedule = cfg.optim.schedule
    cfg.optim.schedule = "linear"
    norms: list = []
    handle = _record_grad_norms(norms)
    try:
        first = classify.run(cfg, ctx)
    finally:
        handle.remove()
        cfg.optim.schedule = lr_schedule
    w = method.refine(np.asarray(norms), power=cfg.power, smooth=cfg.smooth)
    seed_everything(cfg.seed)  # the second pass starts from the first pass's initialization
    out = classify.run(cfg, ctx, lr_factors=w)
    out.update({f"pass1_{k}": v for k, v in first.items() if k != "steps"})
    out["warmup_frac"] = float(np.argmax(w)) / len(w)
    return out
