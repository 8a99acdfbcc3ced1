"""One row, one seed: the MAML paper's sinusoid regression (Section 5.1). Tasks y = A sin(x - phi),
A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]; a 1-40-40-1 ReLU network.

- maml / fomaml: `iterations` meta-steps of Adam (meta_lr) on the mean query loss of `meta_batch`
  tasks after `inner_steps` SGD steps (inner_lr) on each task's K = `shots` support points
  (common.bilevel.meta; fomaml drops the second-order terms);
- pretrained: the paper's baseline, the same network trained with Adam to regress the same sampled
  tasks' support and query points jointly, without adaptation.

Evaluation (the same for every row): `eval_tasks` new tasks per seed, each adapted from the trained
initialization by s SGD steps at inner_lr on K support points and scored on `eval_query` query
points; mse_s for s in 0, 1, 10 (the paper's figure shows up to 10 steps). Tasks at meta-step t come
from a generator seeded by (seed, t), so a resumed run draws the same tasks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optrepro.bilevel import meta
from optrepro.config import BaseConfig
from optrepro.errors import ConfigError

from . import method

EVAL_STEPS = (0, 1, 10)


@dataclass
class SinusoidConfig(BaseConfig):
    method: str = "maml"
    """maml | fomaml | pretrained."""
    iterations: int = 3000
    meta_batch: int = 25
    shots: int = 10
    """K: support points per task (and query points per training task)."""
    inner_lr: float = 0.01
    inner_steps: int = 1
    meta_lr: float = 1e-3
    hidden: int = 40
    eval_tasks: int = 100
    eval_query: int = 100
    log_every: int = 100


Config = SinusoidConfig


def preflight(cfg: SinusoidConfig) -> None:
    if cfg.method not in method.METHODS:
        raise ConfigError(f"method must be one of {', '.join(method.METHODS)}, got {cfg.method!r}")
    for name in ("iterations", "meta_batch", "shots", "inner_steps", "hidden", "eval_tasks", "eval_query", "log_every"):
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if not (cfg.inner_lr > 0 and cfg.meta_lr > 0):
        raise ConfigError(f"inner_lr and meta_lr must be > 0, got {cfg.inner_lr}, {cfg.meta_lr}")


def net(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def evaluate(model: nn.Module, cfg: SinusoidConfig) -> dict:
    """mse_s after s adaptation steps on fresh tasks (the same tasks for every row of a seed)."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 999_983)
    support, query, _ = meta.sinusoid_tasks(cfg.eval_tasks, cfg.shots, g, query=cfg.eval_query)
    out, params, done = {}, {k: v.detach() for k, v in meta.per_task(model, cfg.eval_tasks).items()}, 0
    for s in EVAL_STEPS:
        with torch.enable_grad():
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            params = meta.adapt(model, params, meta.mse_per_task, *support, steps=s - done, lr=cfg.inner_lr,
                                first_order=True)
        done = s
        with torch.no_grad():
            out[f"mse_{s}"] = float(meta.mse_per_task(meta.forward(model, params, query[0]), query[1]).mean())
    return out


def run(cfg: SinusoidConfig, ctx) -> dict:
    torch.manual_seed(cfg.seed)
    model = net(cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)
    for t in ctx.steps(cfg.iterations, {"model": model, "opt": opt}):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + t)
        support, query, _ = meta.sinusoid_tasks(cfg.meta_batch, cfg.shots, g)
        loss = method.objective(cfg.method, model, support, query, cfg.inner_steps, cfg.inner_lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if t % cfg.log_every == 0 or t == cfg.iterations:
            ctx.log(t, meta_loss=float(loss.detach()))
    res = evaluate(model, cfg)
    ctx.log(cfg.iterations, **res)
    return res
