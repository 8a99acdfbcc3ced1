"""gflownet_local_credit_2023: one row = one GFlowNet objective on the HyperGrid, one seed.

A policy (MLP on one-hot coordinates) is trained for `iters` iterations of `batch` trajectories sampled
on-policy (with `explore` uniform mixing) with Adam; P_B is uniform over parents. Objectives: tb, db and
fldb (forward-looking DB). With `truncate` p, each trajectory is, with probability p, cut at a uniform
point before it stops (an incomplete trajectory: its tail and its stop are lost; TB cannot use it and
drops it). `tb_torchgfn` is the reference baseline: the same network, P_B and exploration trained by torchgfn
2.4.1's own TBGFlowNet sampler and loss (common.rl.gflownet.torchgfn_tb). Every `eval_every` iterations the exact L1 distance between the sampler's terminal
distribution (dynamic programming over the grid) and R / Z is logged; the result holds the last value and
the mean over the evaluations (the area under the learning curve: how fast it converges)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from optrepro.config import BaseConfig, require_at_least
from optrepro.errors import ConfigError
from optrepro.rl.gflownet import (GridPolicy, HyperGrid, db_residuals, l1_to_target, sample_trajectories, tb_residuals,
                                  torchgfn_tb)

OBJECTIVES = ("tb", "db", "fldb", "tb_torchgfn")


@dataclass
class Config(BaseConfig):
    dim: int = 2
    side: int = 8
    low: float = 0.1
    """The reward factor of a coordinate inside the central band (1 outside): R = Π_d r(x_d)."""
    band: float = 0.3
    objective: str = "fldb"
    truncate: float = 0.0
    iters: int = 1000
    batch: int = 16
    lr: float = 1e-3
    lr_logz: float = 0.1
    explore: float = 0.05
    hidden: int = 128
    layers: int = 2
    eval_every: int = 50
    explore_grid: list = field(default_factory=list)
    """If set, the exploration rate is chosen per run from this grid: each value trains once on a tuning seed
    (10_000 + seed) and the lowest mean_l1 wins (ties: the first); the run then trains on its own seed with it.
    The official code tunes exploration per method by grid search; this gives every objective the same grid."""


def preflight(cfg: Config) -> None:
    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"objective '{cfg.objective}' unknown; valid: {', '.join(OBJECTIVES)}")
    HyperGrid(cfg.dim, cfg.side, cfg.low, cfg.band)
    if cfg.dim * cfg.side > 64 or cfg.side ** cfg.dim > 20_000:
        raise ConfigError(f"the exact evaluation enumerates every state: side ** dim must be <= 20000, got "
                          f"{cfg.side} ** {cfg.dim}")
    if cfg.objective == "tb_torchgfn" and cfg.truncate:
        raise ConfigError("tb_torchgfn trains on torchgfn's complete trajectories: truncate must be 0")
    if not 0 <= cfg.truncate < 1:
        raise ConfigError(f"truncate must be in [0, 1), got {cfg.truncate}")
    if not 0 <= cfg.explore < 1:
        raise ConfigError(f"explore must be in [0, 1), got {cfg.explore}")
    require_at_least(cfg, ("iters", "batch", "hidden", "layers", "eval_every"))
    if not (cfg.lr > 0 and cfg.lr_logz > 0):
        raise ConfigError("lr and lr_logz must be > 0")
    if any(not (isinstance(e, (int, float)) and 0 <= e <= 1) for e in cfg.explore_grid):
        raise ConfigError(f"explore_grid values must be in [0, 1], got {cfg.explore_grid}")


def truncate(batch: dict, n: int, p: float, gen: torch.Generator) -> dict:
    """Cut each trajectory with probability p at a uniform position before its last transition."""
    if p == 0:
        return batch
    length = torch.zeros(n, dtype=torch.long).index_add(0, batch["traj"], torch.ones_like(batch["traj"]))
    cut = torch.rand(n, generator=gen) < p
    at = (torch.rand(n, generator=gen) * (length - 1).clamp_min(0)).long() + 1  # keep 1 .. len - 1 transitions
    tr = batch["traj"]
    keep = ~cut[tr] | (batch["t"] < at[tr])
    keep &= ~(cut[tr] & (length[tr] <= 1))  # a one-step trajectory cut is empty
    return {k: v[keep] for k, v in batch.items()}


def train(cfg: Config, env: HyperGrid, seed: int, explore: float, log=None) -> list:
    """Train one policy from `seed`; returns the exact L1 at every evaluation."""
    torch.manual_seed(seed)
    policy = GridPolicy(env, cfg.hidden, cfg.layers)
    if cfg.objective == "tb_torchgfn":
        tenv, gfn = torchgfn_tb(env, policy)
        log_z = gfn.logZ
    else:
        log_z = policy.log_z
    opt = torch.optim.Adam([{"params": [p for n, p in policy.named_parameters() if n != "log_z"], "lr": cfg.lr},
                            {"params": [log_z], "lr": cfg.lr_logz}])
    gen = torch.Generator().manual_seed(1000 + seed)
    curve = []
    for it in range(1, cfg.iters + 1):
        if cfg.objective == "tb_torchgfn":  # torchgfn samples with the global generator, seeded above
            loss = gfn.loss(tenv, gfn.sample_trajectories(tenv, n=cfg.batch, epsilon=explore))
        else:
            batch, _ = sample_trajectories(env, policy, cfg.batch, gen, explore=explore)
            batch = truncate(batch, cfg.batch, cfg.truncate, gen)
            if cfg.objective == "tb":
                complete = torch.zeros(cfg.batch, dtype=torch.bool)
                complete[batch["traj"][batch["done"]]] = True
                res = tb_residuals(env, policy, batch, cfg.batch)[complete]
            else:
                res = db_residuals(env, policy, batch, forward_looking=cfg.objective == "fldb")
            loss = (res ** 2).mean() if len(res) else torch.zeros((), requires_grad=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % cfg.eval_every == 0 or it == cfg.iters:
            curve.append(l1_to_target(env, policy))
            if log is not None:
                log(it, l1=curve[-1], loss=float(loss.detach()), trajectories=it * cfg.batch)
    return curve


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("a run trains in under a minute")
    env = HyperGrid(cfg.dim, cfg.side, cfg.low, cfg.band)
    explore = cfg.explore
    if cfg.explore_grid:
        scores = []
        for i, e in enumerate(cfg.explore_grid):
            curve = train(cfg, env, 10_000 + cfg.seed, float(e))
            scores.append(sum(curve) / len(curve))
            ctx.log(i, tune_explore=float(e), tune_mean_l1=scores[-1])
        explore = float(cfg.explore_grid[scores.index(min(scores))])
    curve = train(cfg, env, cfg.seed, explore, log=ctx.log)
    return {"l1": curve[-1], "mean_l1": sum(curve) / len(curve), "trajectories": cfg.iters * cfg.batch,
            "explore": explore}
