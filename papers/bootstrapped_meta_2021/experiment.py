"""One row, one seed: online meta-learning of an MLP's SGD learning rate on mnist1d, with the
standard meta-gradient (truncated backprop through K steps) or BMG (K steps + L bootstrap steps,
L2 or KL matching), or a fixed learning rate.

The learner (a 40-`hidden`-10 ReLU MLP) takes `steps` SGD steps on training minibatches (`batch`);
every K of them the log learning rate takes one Adam step (`meta_lr`) on the meta-gradient, whose
meta-objective is the cross-entropy on a minibatch (`meta_batch`) of a held-out validation split
(800 of mnist1d's 3200 training signals). Minibatches of step t come from a generator seeded by
(seed, t), so every row of a seed sees the same learner batches and a resumed run draws the same.
Reported: validation and test loss/accuracy of the final learner, the final learning rate, and the
gradient evaluations spent (learner + meta)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from optrepro.bilevel import bootstrap
from optrepro.config import BaseConfig, require_at_least
from optrepro.errors import ConfigError

METHODS = ("fixed", "mg", "bmg")


@dataclass
class Config(BaseConfig):
    method: str = "bmg"
    """fixed | mg (meta-gradient through K steps) | bmg"""
    K: int = 1
    L: int = 10
    """bmg: bootstrap steps."""
    beta: float = 1.0
    """bmg: step of the final gradient step on the meta-objective in the target."""
    match: str = "l2"
    """bmg: l2 | kl"""
    steps: int = 1500
    batch: int = 64
    meta_batch: int = 256
    hidden: int = 100
    init_lr: float = 0.03
    meta_lr: float = 0.03
    log_every: int = 100


def preflight(cfg: Config) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.match not in ("l2", "kl"):
        raise ConfigError(f"match must be l2 or kl, got {cfg.match!r}")
    require_at_least(cfg, ("K", "steps", "batch", "meta_batch", "hidden", "log_every"))
    if cfg.L < 0 or cfg.steps % cfg.K:
        raise ConfigError(f"L must be >= 0 and steps ({cfg.steps}) a multiple of K ({cfg.K})")
    if not (cfg.init_lr > 0 and cfg.meta_lr > 0 and cfg.beta > 0):
        raise ConfigError("init_lr, meta_lr and beta must be > 0")


class LogLR(nn.Module):
    def __init__(self, lr: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(math.log(lr)))


def _data(seed: int):
    from optrepro import data
    s = data.load("mnist1d", seed=seed)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(s.x_train), generator=g)
    va, tr = perm[:800], perm[800:]
    x, y = s.x_train.flatten(1).float(), s.y_train
    return (x[tr], y[tr]), (x[va], y[va]), (s.x_test.flatten(1).float(), s.y_test)


def run(cfg: Config, ctx) -> dict:
    (xtr, ytr), (xva, yva), (xte, yte) = _data(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = nn.Sequential(nn.Linear(xtr.shape[1], cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 10))
    log_lr = LogLR(cfg.init_lr)
    opt = torch.optim.Adam(log_lr.parameters(), lr=cfg.meta_lr)
    ce = nn.functional.cross_entropy

    def batch(t, meta=False):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 2 * t + int(meta))
        X, Y = (xva, yva) if meta else (xtr, ytr)
        i = torch.randint(0, len(X), (cfg.meta_batch if meta else cfg.batch,), generator=g)
        return X[i], Y[i]

    def loss_fn(w, b):
        return ce(functional_call(model, w, (b[0],)), b[1])

    evals = {"n": 0, "log_lr_sum": 0.0}
    segments = cfg.steps // cfg.K
    for s in ctx.steps(segments, {"model": model, "log_lr": log_lr, "opt": opt, "evals": evals}):
        t0 = (s - 1) * cfg.K
        evals["log_lr_sum"] += cfg.K * float(log_lr.value)  # the rate this segment's K steps use
        w0 = dict(model.named_parameters())
        inner = [batch(t0 + k) for k in range(cfg.K)]
        if cfg.method == "fixed":
            wK = bootstrap.unroll(w0, log_lr.value, inner, loss_fn, graph=False)
            evals["n"] += cfg.K
        else:
            mb = batch(s, meta=True)
            boot = [batch(t0 + cfg.K + k) for k in range(cfg.L)] if cfg.method == "bmg" else []
            g, wK = bootstrap.meta_gradient(cfg.method, w0, log_lr.value, inner, loss_fn, lambda w: loss_fn(w, mb),
                                            boot, cfg.beta, cfg.match, lambda w: functional_call(model, w, (mb[0],)))
            evals["n"] += 2 * cfg.K + 1 + (cfg.L + 1 if cfg.method == "bmg" else 0)
            opt.zero_grad(set_to_none=True)
            log_lr.value.grad = g
            opt.step()
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(wK[k])
        if (s * cfg.K) % cfg.log_every == 0 or s == segments:
            ctx.log(s * cfg.K, lr=float(log_lr.value.exp()), train_loss=float(loss_fn(wK, inner[-1]).detach()))
    with torch.no_grad():
        out_va, out_te = model(xva), model(xte)
        res = {"val_loss": float(ce(out_va, yva)), "test_loss": float(ce(out_te, yte)),
               "test_acc": 100.0 * float((out_te.argmax(1) == yte).float().mean()),
               "final_lr": float(log_lr.value.exp()), "log10_final_lr": float(log_lr.value) / math.log(10),
               "mean_log10_lr": evals["log_lr_sum"] / cfg.steps / math.log(10),
               "grad_evals": float(evals["n"])}
    ctx.log(cfg.steps, **res)
    return res
