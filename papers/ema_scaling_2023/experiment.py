"""One row, one seed: train SGD with a model EMA at the base batch B (the reference) and at kappa B
under SGD's linear scaling rule, with (`scale_ema`) or without the EMA scaling rule, from the same
initial weights on the same sample stream, and compare the EMA models' test-loss curves at matched
numbers of samples seen.

Metrics: `ema_gap`, the mean over the matched checkpoints of |EMA test loss at kappa B - EMA test
loss at B| (the paper's "same training dynamics" measured as a number); `target_gap`, the same for
the target models (what SGD's own scaling rule leaves, the floor for the EMA's gap); the final EMA
and target test accuracies at kappa B; `ref_ema_test_acc` at B."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optrepro import data as data_mod
from optrepro import models
from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.optim.ema import ModelEMA
from optrepro.train import accuracy

from .method import scaled_hyperparameters


@dataclass
class EMAScalingConfig(BaseConfig):
    dataset: str = "digits"
    """digits | mnist1d | synthetic (offline) | cifar10 (full scale, from $OPTREPRO_DATA)."""
    model: str = "mlp"
    batch: int = 4
    """The base batch size B (the reference run)."""
    lr: float = 0.02
    """SGD learning rate at B (scaled linearly with the batch)."""
    ema: float = 0.99
    """EMA momentum rho at B."""
    steps: int = 1600
    """SGD steps at B; the kappa B run takes steps / kappa on the same samples."""
    kappa: int = 1
    """Batch-size multiplier of this row."""
    scale_ema: bool = True
    """Apply the EMA scaling rule (rho ** kappa); False keeps rho (the baseline)."""
    evals: int = 20
    """Matched checkpoints, equally spaced in samples seen."""


def preflight(cfg: EMAScalingConfig) -> None:
    data_mod.core.check_available(cfg.dataset)
    if cfg.kappa < 1 or cfg.evals < 1 or cfg.steps % (cfg.kappa * cfg.evals):
        raise ConfigError(f"steps ({cfg.steps}) must be a multiple of kappa x evals ({cfg.kappa} x {cfg.evals}): "
                          "every checkpoint falls on a step of both runs")
    if not 0.0 <= cfg.ema <= 1.0:
        raise ConfigError(f"ema must be in [0, 1], got {cfg.ema}")


def sample_stream(n: int, total: int, seed: int) -> torch.Tensor:
    """`total` training indices: one seeded permutation per epoch, concatenated. Both runs read it in
    order (B or kappa B at a time), so they see the same samples in the same order."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + 17)
    epochs = -(-total // n)
    return torch.cat([torch.randperm(n, generator=g) for _ in range(epochs)])[:total]


def _train(cfg, split, init: dict, kappa: int, scale_ema: bool, ctx, name: str) -> dict:
    h = scaled_hyperparameters(cfg.batch, cfg.lr, cfg.steps, cfg.ema, kappa, scale_ema)
    model = models.build(cfg.model, split.in_shape, split.num_classes).to(cfg.device)
    model.load_state_dict(init)
    opt = torch.optim.SGD(model.parameters(), lr=h.lr)
    ema = ModelEMA(model, h.momentum)
    stream = sample_stream(len(split.x_train), cfg.batch * cfg.steps, cfg.seed).to(cfg.device)
    every = h.steps // cfg.evals
    curve = {"samples": [], "ema_loss": [], "target_loss": []}
    final = {}
    for s in ctx.steps(h.steps, {"model": model, "opt": opt, "ema": ema, "curve": curve}, name=name):
        model.train()
        i = stream[(s - 1) * h.batch: s * h.batch]
        loss = nn.functional.cross_entropy(model(split.x_train[i]), split.y_train[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
        if s % every == 0:
            e_acc, e_loss = accuracy(ema.module, split.x_test, split.y_test)
            t_acc, t_loss = accuracy(model, split.x_test, split.y_test)
            curve["samples"].append(s * h.batch)
            curve["ema_loss"].append(e_loss)
            curve["target_loss"].append(t_loss)
            final = {"ema_test_acc": e_acc, "ema_test_loss": e_loss, "test_acc": t_acc, "test_loss": t_loss}
    return {"curve": curve, "final": final, "hparams": h}


def run(cfg: EMAScalingConfig, ctx) -> dict:
    split = data_mod.load(cfg.dataset, seed=cfg.seed)
    if cfg.device != "cpu":
        for k in ("x_train", "y_train", "x_test", "y_test"):
            setattr(split, k, getattr(split, k).to(cfg.device))
    init = models.build(cfg.model, split.in_shape, split.num_classes).state_dict()
    ref = _train(cfg, split, init, 1, True, ctx, "reference")
    var = ref if cfg.kappa == 1 else _train(cfg, split, init, cfg.kappa, cfg.scale_ema, ctx, "scaled")
    rc, vc = ref["curve"], var["curve"]
    assert rc["samples"] == vc["samples"], (rc["samples"], vc["samples"])
    for n, a, b in zip(vc["samples"], vc["ema_loss"], rc["ema_loss"]):
        ctx.log(n, ema_test_loss=a, ref_ema_test_loss=b)

    def gap(k):
        return sum(abs(a - b) for a, b in zip(vc[k], rc[k])) / len(rc[k])

    return {"ema_gap": gap("ema_loss"), "target_gap": gap("target_loss"),
            "ema_test_acc": var["final"]["ema_test_acc"], "ema_test_loss": var["final"]["ema_test_loss"],
            "test_acc": var["final"]["test_acc"], "ref_ema_test_acc": ref["final"]["ema_test_acc"],
            "ema_momentum": var["hparams"].momentum, "batch": var["hparams"].batch}
