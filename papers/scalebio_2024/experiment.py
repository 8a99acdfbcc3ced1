"""One row, one seed: data reweighting on sklearn digits with K = 5 training sources of increasing
label noise and a small clean validation set.

Data (per seed): `n_val` clean examples of the digits training split are the validation set; the
rest is cut into 5 equal sources whose labels are replaced by a different random class at rates
`noise` (0, 0.2, 0.4, 0.6, 0.8 by default). The test split is never used for training or selection.

Rows (`method`), all the same 64-`hidden`-10 MLP, Adam, `outer` x `steps_per_outer` steps with the
learning rate divided by `tau` at every outer iteration, minibatches of `per_source` examples from
every source (common.bilevel.reweight.SourceSampler) and the whole validation set:
- scalebio: common.bilevel.reweight.penalty_minimax (source weights softmax(lam) learned);
- fixed_weights: the same loop with lam frozen at 0 (uniform): it still trains on the validation
  set, so it separates what the reweighting adds from what the validation data adds;
- uniform: training loss with uniform weights only; val_only: validation loss only;
  clean_only: the noise-free source only (an oracle that knows which source is clean);
- scalebio_retrain: scalebio, then a fresh model trained like `uniform` but with the learned
  weights and no validation data: what the weights alone are worth.
Reported: test accuracy/loss of the final model, and the weights it was trained with: p_clean (mass
on the two least noisy sources) and mixture_noise (sum_k p_k noise_k). val_only reports uniform
weights (it uses no training source)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from optrepro.bilevel.reweight import SourceSampler, penalty_minimax, source_losses, weighted
from optrepro.config import BaseConfig, require_at_least
from optrepro.errors import ConfigError
from optrepro.train import TrainConfig, train_loop

METHODS = ("scalebio", "fixed_weights", "uniform", "val_only", "clean_only", "scalebio_retrain")


@dataclass
class Config(BaseConfig):
    method: str = "scalebio"
    noise: list = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8])
    n_val: int = 100
    hidden: int = 64
    per_source: int = 16
    outer: int = 4
    steps_per_outer: int = 500
    alpha0: float = 1.0
    tau: float = 2.0
    lr: float = 1e-3
    lr_lam: float = 0.05
    log_every: int = 100


def preflight(cfg: Config) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if len(cfg.noise) < 2 or not all(0 <= float(r) < 1 for r in cfg.noise):
        raise ConfigError(f"noise: give >= 2 rates in [0, 1), got {cfg.noise}")
    require_at_least(cfg, ("n_val", "hidden", "per_source", "outer", "steps_per_outer", "log_every"))
    if not (cfg.lr > 0 and cfg.lr_lam > 0 and cfg.alpha0 > 0 and cfg.tau >= 1):
        raise ConfigError("lr, lr_lam and alpha0 must be > 0 and tau >= 1")


def make_data(cfg: Config):
    from optrepro import data
    s = data.load("digits", seed=cfg.seed)
    x, y = s.x_train.flatten(1).float(), s.y_train.clone()
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(len(x), generator=g)
    va, tr = perm[:cfg.n_val], perm[cfg.n_val:]
    K = len(cfg.noise)
    if len(tr) < 2 * K:
        raise ConfigError(f"n_val = {cfg.n_val} leaves too few training examples for {K} sources")
    source = torch.arange(len(tr)) * K // len(tr)
    ytr = y[tr].clone()
    for k, rate in enumerate(cfg.noise):
        idx = torch.nonzero(source == k).flatten()
        flip = idx[torch.rand(len(idx), generator=g) < float(rate)]
        ytr[flip] = (ytr[flip] + torch.randint(1, 10, (len(flip),), generator=g)) % 10
    return (x[tr], ytr, source), (x[va], y[va]), (s.x_test.flatten(1).float(), s.y_test)


def run(cfg: Config, ctx) -> dict:
    (xtr, ytr, src), (xva, yva), (xte, yte) = make_data(cfg)
    K = len(cfg.noise)
    sampler = SourceSampler(src, cfg.per_source, cfg.seed)
    ce = nn.functional.cross_entropy

    def net(seed_offset=0):
        torch.manual_seed(cfg.seed * 7 + seed_offset)
        return nn.Sequential(nn.Linear(xtr.shape[1], cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 10))

    def train_loss(model, t):
        i = sampler.batch(t)
        return source_losses(ce(model(xtr[i]), ytr[i], reduction="none"), src[i], K)

    def val_loss(model, t):
        return ce(model(xva), yva)

    def log(t, **kw):
        if t % cfg.log_every == 0:
            ctx.log(t, **kw)

    total = cfg.outer * cfg.steps_per_outer
    uniform = torch.zeros(K)

    def plain(model, loss_of):
        """common.train.train_loop: Adam on loss_of(model, t), t = 1, 2, ..., with the minimax's
        learning-rate schedule (divided by tau every steps_per_outer steps)."""
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cfg.tau ** (-(step // cfg.steps_per_outer)))
        train_loop(model, opt, sched, lambda step: loss_of(model, step + 1), lambda: {},
                   TrainConfig(steps=total, log_every=cfg.log_every), ctx)
        return model

    lam = uniform.clone()
    if cfg.method in ("scalebio", "fixed_weights", "scalebio_retrain"):
        model = net()
        u = net()
        lam = penalty_minimax(model, u, uniform.clone(), train_loss, val_loss, cfg.steps_per_outer, cfg.outer,
                              cfg.alpha0, cfg.tau, cfg.lr, cfg.lr_lam,
                              lambda n, st: ctx.steps(n, st, name="minimax"), log,
                              freeze_lam=cfg.method == "fixed_weights")
        if cfg.method == "scalebio_retrain":
            model = plain(net(1), lambda m, t: weighted(lam, train_loss(m, t)))
    elif cfg.method == "uniform":
        model = plain(net(), lambda m, t: weighted(uniform, train_loss(m, t)))
    elif cfg.method == "val_only":
        model = plain(net(), val_loss)
    else:  # clean_only: all weight on the least noisy source
        lam = torch.full((K,), -1e4)
        lam[int(torch.tensor(cfg.noise).argmin())] = 0.0
        model = plain(net(), lambda m, t: weighted(lam, train_loss(m, t)))
    p = torch.softmax(lam, 0)
    order = torch.tensor(cfg.noise).argsort()
    with torch.no_grad():
        out = model(xte)
        res = {"test_acc": 100.0 * float((out.argmax(1) == yte).float().mean()), "test_loss": float(ce(out, yte)),
               "p_clean": float(p[order[:2]].sum()),
               "mixture_noise": float(p @ torch.tensor([float(r) for r in cfg.noise]))}
        res.update({f"p_{k}": float(p[k]) for k in range(K)})
    ctx.log(total, **res)
    return res
