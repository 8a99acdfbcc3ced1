"""One row, one seed: steps to a validation target at one batch size, the best of the same
learning-rate grid for every row (the paper's measurement: steps-to-result for a batch size, with
the metaparameters tuned per batch size under one budget).

The workload is the mini AlgoPerf digits MLP (common.optim.algoperf.classify_workload): a trial
trains with SGD (plain, heavy-ball or Nesterov momentum) at batch size `batch_size` until the
validation error reaches `target` (evaluated every `eval_every` steps) or `max_steps` run out. The
row reports the fewest steps over its learning-rate grid (common.optim.algoperf.best_trial: ties go
to the lower best error), the winning rate and how many rates reached the target. A row none of whose rates reaches the target reports
steps = max_steps + eval_every (censored) and reached = 0."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.optim.algoperf import Workload, best_trial, classify_workload

MOMENTA = ("none", "heavy_ball", "nesterov")


@dataclass
class Config(BaseConfig):
    batch_size: int = 64
    momentum: str = "nesterov"
    """none (plain SGD) | heavy_ball | nesterov (coefficient `beta`)."""
    beta: float = 0.9
    lrs: list = field(default_factory=lambda: [0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    """The learning-rate grid every row searches (the same budget for every batch size)."""
    dataset: str = "digits"
    model: str = "mlp"
    target: float = 0.05
    """Validation error to reach."""
    max_steps: int = 1500
    eval_every: int = 10


def preflight(cfg: Config) -> None:
    if cfg.momentum not in MOMENTA:
        raise ConfigError(f"momentum '{cfg.momentum}' unknown; valid: {', '.join(MOMENTA)}")
    if cfg.batch_size < 1 or cfg.max_steps < 1 or cfg.eval_every < 1 or not cfg.lrs:
        raise ConfigError("batch_size, max_steps and eval_every must be >= 1 and lrs non-empty")
    if not (0 <= cfg.beta < 1 and 0 < cfg.target < 1):
        raise ConfigError(f"beta must be in [0, 1) and target in (0, 1), got {cfg.beta}, {cfg.target}")


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint(f"{len(cfg.lrs)} short trials (at most {cfg.max_steps} steps each), seconds")
    wl = Workload(f"{cfg.dataset}_{cfg.model}_b{cfg.batch_size}", "val_error", cfg.target, cfg.max_steps,
                  cfg.eval_every, classify_workload(cfg.dataset, cfg.model, cfg.batch_size))
    hp = {} if cfg.momentum == "none" else {"momentum": cfg.beta, "nesterov": cfg.momentum == "nesterov"}
    trials = []

    def log(r):
        trials.append(r)
        ctx.log(len(trials) - 1, lr=r["hparams"]["lr"], steps=r["steps"] if math.isfinite(r["steps"]) else -1.0,
                best_error=r["best"])

    r = best_trial(wl, "sgd", [{"lr": float(lr), **hp} for lr in cfg.lrs], [cfg.seed] * len(cfg.lrs), on_trial=log)
    steps = r["steps"] if math.isfinite(r["steps"]) else float(cfg.max_steps + cfg.eval_every)
    return {"steps_to_target": steps, "best_lr": r["hparams"]["lr"],
            "lrs_reaching": float(sum(math.isfinite(t["steps"]) for t in trials)),
            "examples_to_target": steps * cfg.batch_size}
