"""A plain supervised trainer with checkpoint/resume, a divergence guard and periodic evaluation.

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches an
uninterrupted run would: `--resume` reproduces the final metrics bit for bit on CPU."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from optrepro.errors import Diverged
from optrepro.optim.base import set_mode
from optrepro.run import RunContext


@dataclass
class TrainConfig:
    steps: int = 500
    """Optimizer steps."""
    batch_size: int = 64
    eval_every: int = 0
    """Evaluate every N steps (0: only at the end)."""
    eval_at: list = field(default_factory=list)
    """Also evaluate after these steps (e.g. log-spaced, for loss-vs-compute curves)."""
    log_every: int = 10
    """Write the training loss to metrics.jsonl every N steps (every step is still NaN-guarded)."""


def epoch_batches(n: int, batch_size: int, seed: int) -> Callable[[int], torch.Tensor]:
    """step -> indices: reshuffled each epoch from (seed, epoch); the last partial batch is dropped."""
    batch_size = min(batch_size, n)
    per_epoch = n // batch_size
    cache = {}

    def indices(step: int) -> torch.Tensor:
        epoch, i = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        return cache[epoch][i * batch_size:(i + 1) * batch_size]

    return indices


def train_loop(model: nn.Module, opt, sched, step_loss: Callable[[int], torch.Tensor],
               evaluate: Callable[[], dict], tc: TrainConfig, ctx: RunContext,
               state: dict | None = None, curvature_loss: Callable[[int], torch.Tensor] | None = None) -> dict:
    """Runs `tc.steps` steps of `loss = step_loss(step); backward; opt.step()`; returns evaluate().

    Optimizers with train/eval modes (schedule-free) are switched to eval for every evaluation and
    back to train before the next step. Checkpoints hold the model, optimizer, scheduler, the RNGs
    and `state` (more objects the caller's steps depend on; see common.checkpoint)."""
    inner_evaluate = evaluate

    def evaluate():
        set_mode(opt, False)
        out = inner_evaluate()
        set_mode(opt, True)
        return out

    eval_at = set(int(x) for x in tc.eval_at)
    state = {"model": model, "opt": opt, **({"sched": sched} if sched is not None else {}), **(state or {})}
    set_mode(opt, True)
    needs_graph = bool(getattr(opt, "needs_graph", False))  # second-order optimizers (AdaHessian) differentiate .grad
    every = int(getattr(opt, "hessian_every", 0) or 0)
    if every and curvature_loss is None:
        from optrepro.errors import ConfigError
        raise ConfigError(f"{type(opt).__name__} refreshes its curvature from sampled labels every {every} steps, "
                          "and this task gives it none (curvature_loss): use it on a task that does (common.tasks.charlm)")
    for s in ctx.steps(tc.steps, state):
        step = s - 1
        model.train()
        loss = step_loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward(create_graph=needs_graph)
        opt.step()
        if every and step % every == every - 1:  # as the authors: after the k-th, 2k-th, ... step
            opt.zero_grad(set_to_none=True)
            curvature_loss(step).backward()
            opt.update_hessian()
        if sched is not None:
            sched.step()
        lv = float(loss.detach())
        if not math.isfinite(lv):
            ctx.log(s, loss=lv)
            raise Diverged(s, "loss", lv)
        if s % tc.log_every == 0 or s == tc.steps:
            ctx.log(s, loss=lv, lr=opt.param_groups[0]["lr"])
        if ((tc.eval_every and s % tc.eval_every == 0) or s in eval_at) and s != tc.steps:
            ctx.log(s, **evaluate())
    final = evaluate()
    set_mode(opt, False)  # leave the model at the evaluated point
    ctx.log(tc.steps, **final)
    return final


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> tuple[float, float]:
    """(accuracy in %, mean cross-entropy) over (x, y)."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        loss += float(nn.functional.cross_entropy(out, y[i:i + batch], reduction="sum"))
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / len(x), loss / len(x)


def train_classifier(model: nn.Module, split, opt, sched, tc: TrainConfig, ctx: RunContext,
                     prefix: str = "") -> dict:
    """Cross-entropy training on a `Split`; returns {prefix+'test_acc', 'test_loss', 'train_loss', 'train_acc'}."""
    idx = epoch_batches(len(split.x_train), tc.batch_size, ctx.seed)

    def step_loss(step):
        i = idx(step)
        return nn.functional.cross_entropy(model(split.x_train[i]), split.y_train[i])

    def evaluate():
        te_acc, te_loss = accuracy(model, split.x_test, split.y_test)
        tr_acc, tr_loss = accuracy(model, split.x_train, split.y_train)
        out = {f"{prefix}test_acc": te_acc, f"{prefix}test_loss": te_loss,
               f"{prefix}train_acc": tr_acc, f"{prefix}train_loss": tr_loss}
        if getattr(split, "x_val", None) is not None:
            out[f"{prefix}val_acc"], out[f"{prefix}val_loss"] = accuracy(model, split.x_val, split.y_val)
        return out

    return train_loop(model, opt, sched, step_loss, evaluate, tc, ctx)
