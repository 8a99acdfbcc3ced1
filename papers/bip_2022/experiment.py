"""One row, one seed: unstructured pruning of an MLP on sklearn digits at a target density, by
one-shot magnitude pruning (omp), iterative magnitude pruning (imp) or BiP (bip), from the same
dense pretrained network.

Every row first pretrains the dense 64-`hidden`-10 ReLU MLP for `pretrain_epochs` epochs (SGD,
momentum 0.9, `lr`, batch `batch`) and keeps its weights after `rewind_epoch` epochs. Then:
- omp: prune to `density` by layerwise magnitude, rewind the survivors to the rewind point and
  retrain `epochs` epochs with the mask fixed;
- imp: rounds that each prune `imp_rate` of the surviving weights by magnitude (the last round
  lands on `density`: ceil(log d / log(1 - rate)) rounds, 11 / 16 / 21 for 10% / 3% / 1% at
  the standard 20%), rewinding and retraining `epochs` epochs each (Frankle et al.'s rewinding);
- bip: scores initialized to |w|; `epochs` epochs alternating one SGD step on the weights (mask =
  top-k(|scores|) fixed; minibatch A) and one SGD step (`mask_lr`) on the scores with the implicit
  gradient (method.py; 1/gamma = `inv_gamma`, 0 drops the second-order term; minibatch B); the
  final mask is top-k(|scores|) and the network is evaluated without retraining;
- dense: the pretrained network, unpruned.
Reported: test accuracy, density reached, minibatch gradient passes after pretraining
(grad_passes: a BiP step counts 2), IMP's rounds, wall time after pretraining (time_s) and BiP's mean
||correction|| / ||first-order term|| (ig_ratio; 0 for other rows)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from optrepro.config import BaseConfig, require_at_least
from optrepro.errors import ConfigError
from optrepro.sparsity import MaskedMLP, density_schedule, magnitude_masks
from optrepro.train import TrainConfig, train_loop

from . import method

METHODS = ("dense", "omp", "imp", "bip")


@dataclass
class Config(BaseConfig):
    method: str = "bip"
    density: float = 0.05
    hidden: list = field(default_factory=lambda: [256, 256])
    pretrain_epochs: int = 30
    rewind_epoch: int = 2
    epochs: int = 30
    imp_rate: float = 0.2
    batch: int = 64
    lr: float = 0.05
    mask_lr: float = 0.1
    inv_gamma: float = 1e-4


def preflight(cfg: Config) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if not 0 < cfg.density <= 1:
        raise ConfigError(f"density must be in (0, 1], got {cfg.density}")
    if not 0 < cfg.imp_rate < 1:
        raise ConfigError(f"imp_rate must be in (0, 1), got {cfg.imp_rate}")
    require_at_least(cfg, ("pretrain_epochs", "epochs", "batch"))
    if not 0 <= cfg.rewind_epoch <= cfg.pretrain_epochs:
        raise ConfigError(f"rewind_epoch must be in [0, pretrain_epochs], got {cfg.rewind_epoch}")
    if not (cfg.lr > 0 and cfg.mask_lr > 0 and cfg.inv_gamma >= 0):
        raise ConfigError("lr and mask_lr must be > 0, inv_gamma >= 0")


def run(cfg: Config, ctx) -> dict:
    from optrepro import data
    s = data.load("digits", seed=cfg.seed)
    xtr, ytr = s.x_train.flatten(1).float(), s.y_train
    xte, yte = s.x_test.flatten(1).float(), s.y_test
    per_epoch = (len(xtr) + cfg.batch - 1) // cfg.batch
    torch.manual_seed(cfg.seed)
    model = MaskedMLP([xtr.shape[1], *cfg.hidden, 10])
    ce = nn.functional.cross_entropy

    def batch(t, stream):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 2 * t + stream)
        i = torch.randint(0, len(xtr), (cfg.batch,), generator=g)
        return xtr[i], ytr[i]

    def weight_opt():
        return torch.optim.SGD([*model.weights, *model.biases], lr=cfg.lr, momentum=0.9)

    def accuracy() -> float:
        with torch.no_grad():
            return 100.0 * float((model(xte).argmax(1) == yte).float().mean())

    def step_loss(t: int):
        x, y = batch(t, 0)
        return ce(model(x), y)

    def sgd(steps: int, offset: int, evaluate, state: dict, before=None) -> float:
        """common.train.train_loop: `steps` SGD steps (batches offset + 1, offset + 2, ...; `before(step)`
        runs first at every step); returns the seconds it took in this process."""
        def loss(step):
            if before is not None:
                before(step)
            return step_loss(offset + step + 1)
        t0 = time.perf_counter()
        train_loop(model, weight_opt(), None, loss, evaluate, TrainConfig(steps=steps, log_every=per_epoch), ctx, state)
        return time.perf_counter() - t0

    # dense pretraining, keeping the weights after `rewind_epoch` epochs (0: the initialization)
    params = (*model.weights, *model.biases)
    rewind = [p.detach().clone() for p in params]
    at, total = cfg.rewind_epoch * per_epoch, cfg.pretrain_epochs * per_epoch

    def keep_rewind_point(step: int) -> None:
        if step == at and at > 0:
            with torch.no_grad():
                for r, p in zip(rewind, params):
                    r.copy_(p)

    sgd(total, 0, lambda: {"pretrain_test_acc": accuracy()}, {"rewind": rewind}, keep_rewind_point)
    keep_rewind_point(total)  # rewind_epoch = pretrain_epochs: the end of pretraining

    stats = {"ig_sum": 0.0, "ig_n": 0.0, "time": 0.0}
    steps = cfg.epochs * per_epoch

    def rewind_weights():
        with torch.no_grad():
            for r, p in zip(rewind, params):
                p.copy_(r)

    densities = []
    if cfg.method in ("omp", "imp"):
        rounds = max(1, math.ceil(math.log(cfg.density) / math.log(1 - cfg.imp_rate) - 1e-9))
        densities = [cfg.density] if cfg.method == "omp" else density_schedule(cfg.density, rounds)
        for r, d in enumerate(densities):
            model.set_masks(magnitude_masks(list(model.weights), d, None if r == 0 else model.masks))
            rewind_weights()
            stats["time"] += sgd(steps, 10**7, lambda: {"round_test_acc": accuracy()}, {"stats": stats})
    elif cfg.method == "bip":
        with torch.no_grad():
            for sc, w in zip(model.scores, model.weights):
                sc.copy_(w.abs())
        opt_w = weight_opt()
        opt_s = torch.optim.SGD(list(model.scores), lr=cfg.mask_lr, momentum=0.9)
        for t in ctx.steps(steps, {"model": model, "opt_w": opt_w, "opt_s": opt_s, "stats": stats}, name="bip"):
            t0 = time.perf_counter()
            masks = method.masks_from_scores(model, cfg.density)
            loss = method.lower_loss(model, masks, *batch(10**7 + t, 0))   # lower level: weights
            opt_w.zero_grad(set_to_none=True)
            loss.backward()
            opt_w.step()
            grads, ratio = method.implicit_score_grads(model, masks, *batch(10**7 + t, 1), cfg.inv_gamma)
            for sc, g in zip(model.scores, grads):                          # upper level: scores
                sc.grad = g
            opt_s.step()
            stats["ig_sum"] += ratio
            stats["ig_n"] += 1
            stats["time"] += time.perf_counter() - t0
            if t % per_epoch == 0:
                ctx.log(t, lower_loss=float(loss.detach()))
        model.set_masks(method.masks_from_scores(model, cfg.density))
    passes = steps * (2 if cfg.method == "bip" else len(densities))  # a BiP step makes two passes
    res = {"test_acc": accuracy(), "density": model.density(), "rounds": float(len(densities)),
           "grad_passes": float(passes), "time_s": stats["time"],
           "ig_ratio": stats["ig_sum"] / stats["ig_n"] if stats["ig_n"] else 0.0}
    ctx.log(cfg.pretrain_epochs * per_epoch + 1, **res)
    return res
