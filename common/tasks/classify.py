"""Supervised classification: a model from common.models on a dataset from common.data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from optrepro import data as data_mod
from optrepro import models
from optrepro.config import BaseConfig
from optrepro.optim import OptimConfig, build_optimizer, check, make_scheduler
from optrepro.run import RunContext
from optrepro.train import TrainConfig, train_classifier


@dataclass
class ClassifyConfig(BaseConfig):
    dataset: str = "digits"
    """digits | mnist1d | synthetic (offline) | cifar10 (full scale, from $OPTREPRO_DATA)."""
    model: str = "cnn"
    """mlp | cnn | resnet20 | resnet34."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    epochs: float = 0.0
    """If > 0, sets train.steps to this many passes over the training set (drop-last batches)."""
    val_frac: float = 0.0
    """If > 0, hold out this fraction of the training set as validation data (reported as val_acc,
    val_loss): what a table's `tune` protocol selects hyper-parameters on, never the test set."""


def preflight(cfg: ClassifyConfig) -> None:
    data_mod.core.check_available(cfg.dataset)
    if cfg.model not in models.vision.MODELS:
        models.build(cfg.model, (1,), 1)  # raises the usage error with valid names
    check(cfg.optim)
    if not 0.0 <= cfg.val_frac < 1.0:
        from optrepro.errors import UsageError
        raise UsageError(f"val_frac must be in [0, 1), got {cfg.val_frac}")


def steps_for(cfg: ClassifyConfig, n_train: int) -> int:
    if cfg.epochs > 0:
        return max(1, int(cfg.epochs * (n_train // min(cfg.train.batch_size, n_train))))
    return cfg.train.steps


def run(cfg: ClassifyConfig, ctx: RunContext, probe: Callable[[nn.Module], dict] | None = None,
        lr_factors: Sequence[float] | None = None,
        make_optimizer: Callable[..., torch.optim.Optimizer] | None = None) -> dict:
    """Train and evaluate. `probe(model) -> {name: value}` is measured on the initial and the final
    model; the results get both, as `<name>_init` and `<name>`. `lr_factors[t]` multiplies the base
    learning rate at step t in place of `optim.schedule` (a schedule computed at run time; the last
    value holds past its end). `make_optimizer(params)` builds an optimizer that is not in the
    registry (one whose step needs more than .grad) in place of `optim.name`; it is called as
    `make_optimizer(params, model=model)`, for optimizers that hook the model's layers (AdaFisher)."""
    split = data_mod.load(cfg.dataset, seed=cfg.seed)
    if cfg.val_frac > 0:
        split = split.holdout(cfg.val_frac, cfg.seed)
    model = models.build(cfg.model, split.in_shape, split.num_classes).to(cfg.device)
    cfg.train.steps = steps_for(cfg, len(split.x_train))
    params = list(model.parameters())
    opt = make_optimizer(params, model=model) if make_optimizer else build_optimizer(params, cfg.optim)
    if lr_factors is None:
        sched = make_scheduler(opt, cfg.optim, cfg.train.steps)
    else:
        factors = [float(x) for x in lr_factors]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: factors[min(s, len(factors) - 1)])
    before = probe(model) if probe else {}
    out = train_classifier(model, split, opt, sched, cfg.train, ctx)
    if probe:
        out.update({f"{k}_init": v for k, v in before.items()}, **probe(model))
    out["steps"] = float(cfg.train.steps)  # derived from `epochs`: recorded beside the metrics
    return out
