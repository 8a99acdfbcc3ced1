"""Class unlearning on sklearn's digits: forget one class of a trained classifier, keep the others.

The original model (a common.models classifier trained with Adam) and its baselines:
- original: unchanged; retrain: trained from scratch without the forget class (the oracle);
- finetune: the original fine-tuned on the retain data (`ft_epochs` passes);
- ga: gradient ascent on the forget class's training examples until their accuracy is at most
  `forget_target` (or `ga_max_steps`);
- a paper's one-shot method through `one_shot(model, forget_loss, retain_loss, forgot, retain_metric)`.
Reported: accuracy on the forget class's and on the other classes' test examples, the cost in
examples passed through a backward pass (`grad_examples`), forward-only evaluations and wall time.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from optrepro import data as data_mod
from optrepro import models
from optrepro.config import BaseConfig
from optrepro.errors import ConfigError

METHODS = ("original", "retrain", "finetune", "ga")


@dataclass
class DigitsUnlearnConfig(BaseConfig):
    method: str = "ga"
    forget_class: int = 0
    model: str = "mlp"
    epochs: int = 30
    """Training epochs of the original and the retrained model (Adam, batch 64)."""
    lr: float = 1e-3
    ft_epochs: int = 5
    ga_lr: float = 1e-2
    ga_max_steps: int = 500
    forget_target: float = 0.01
    """Forgetting criterion of GA and of one-shot methods: forget-class training accuracy at most this."""


def preflight(cfg: DigitsUnlearnConfig, one_shot_methods=()) -> None:
    valid = METHODS + tuple(one_shot_methods)
    if cfg.method not in valid:
        raise ConfigError(f"method '{cfg.method}' unknown; valid: {', '.join(valid)}")
    if not 0 <= cfg.forget_class <= 9:
        raise ConfigError(f"forget_class must be a digit 0-9, got {cfg.forget_class}")
    if cfg.model not in models.vision.MODELS:
        models.build(cfg.model, (1,), 1)
    if cfg.epochs < 1 or cfg.ga_max_steps < 0 or cfg.lr <= 0 or cfg.ga_lr <= 0 or not 0 <= cfg.forget_target < 1:
        raise ConfigError("epochs >= 1, ga_max_steps >= 0, lr and ga_lr > 0, forget_target in [0, 1) required")


def _acc(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean()) if len(y) else float("nan")


def _train(model, x, y, epochs: int, lr: float, seed: int, ctx, name: str) -> int:
    """Adam, batch 64; returns the number of examples passed through backward. One checkpointed step
    per epoch (loop `name` of the run: the original model, the retrained or fine-tuned one)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    seen = {"n": 0}
    model.train()
    for _ in ctx.steps(epochs, {"model": model, "opt": opt, "gen": g, "seen": seen}, name=name):
        perm = torch.randperm(len(y), generator=g)
        for s in range(0, len(y), 64):
            i = perm[s:s + 64]
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen["n"] += len(i)
    model.eval()
    return seen["n"]


def run(cfg: DigitsUnlearnConfig, ctx, one_shot=None) -> dict:
    split = data_mod.load("digits", seed=cfg.seed)
    xtr, ytr, xte, yte = split.x_train, split.y_train, split.x_test, split.y_test
    f_tr, f_te = ytr == cfg.forget_class, yte == cfg.forget_class
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model, split.in_shape, split.num_classes)
    _train(model, xtr, ytr, cfg.epochs, cfg.lr, cfg.seed, ctx, "original")

    def scores(m) -> dict:
        return {"forget_test_acc": _acc(m, xte[f_te], yte[f_te]), "retain_test_acc": _acc(m, xte[~f_te], yte[~f_te]),
                "forget_train_acc": _acc(m, xtr[f_tr], ytr[f_tr]), "retain_train_acc": _acc(m, xtr[~f_tr], ytr[~f_tr])}
    before = scores(model)
    ctx.log(0, **before)
    t0, cost = time.perf_counter(), {"grad_examples": 0.0, "evals": 0.0}
    if cfg.method == "retrain":
        torch.manual_seed(cfg.seed)
        model = models.build(cfg.model, split.in_shape, split.num_classes)
        cost["grad_examples"] = float(_train(model, xtr[~f_tr], ytr[~f_tr], cfg.epochs, cfg.lr, cfg.seed, ctx, "retrain"))
    elif cfg.method == "finetune":
        cost["grad_examples"] = float(_train(model, xtr[~f_tr], ytr[~f_tr], cfg.ft_epochs, cfg.lr, cfg.seed + 1, ctx,
                                             "finetune"))
    elif cfg.method == "ga":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.ga_lr)
        steps = 0
        while steps < cfg.ga_max_steps:
            cost["evals"] += 1
            if _acc(model, xtr[f_tr], ytr[f_tr]) <= cfg.forget_target:
                break
            loss = -F.cross_entropy(model(xtr[f_tr]), ytr[f_tr])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            cost["grad_examples"] += float(f_tr.sum())
        cost["ga_steps"] = float(steps)
    elif cfg.method != "original":
        g = torch.Generator().manual_seed(cfg.seed + 2)
        r_idx = torch.nonzero(~f_tr).flatten()
        r_idx = r_idx[torch.randperm(len(r_idx), generator=g)[:int(f_tr.sum())]]  # a retain sample as large as the forget set
        info = one_shot(model,
                        lambda: F.cross_entropy(model(xtr[f_tr]), ytr[f_tr]),
                        lambda: F.cross_entropy(model(xtr[r_idx]), ytr[r_idx]),
                        lambda: _acc(model, xtr[f_tr], ytr[f_tr]) <= cfg.forget_target,
                        lambda: _acc(model, xtr[r_idx], ytr[r_idx]))
        cost["grad_examples"] = float(f_tr.sum() + len(r_idx))
        cost.update(info)
    cost["unlearn_s"] = time.perf_counter() - t0
    after = scores(model)
    ctx.log(1, **after)
    return {**after, **cost, "original_retain_test_acc": before["retain_test_acc"],
            "original_forget_test_acc": before["forget_test_acc"]}
