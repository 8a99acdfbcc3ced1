"""polyak_pg_2024: one row = REINFORCE (G(PO)MDP with a mean baseline) on one env with either the
Polyak step or Adam at a fixed learning rate, one seed; return against sampled episodes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.rl import check_env, evaluate_deterministic, make_env
from optrepro.rl.episodes import EpisodeLog, gpomdp_surrogate, sample_episodes
from optrepro.rl.estimators import discounted_returns
from optrepro.rl.policy import ActorCritic
from optrepro.papers.polyak_pg_2024.method import PolyakStep


@dataclass
class Config(BaseConfig):
    env: str = "CartPole-v1"
    algo: str = "polyak"
    """polyak or adam."""
    episodes: int = 400
    """Budget: sampled episodes."""
    batch_episodes: int = 8
    gamma: float = 0.99
    hidden: list = field(default_factory=lambda: [32])
    lr: float = 1e-2
    """Adam's learning rate (algo adam)."""
    j_star: str = "running_max"
    """Polyak's J*: running_max, or known (use j_star_value)."""
    j_star_value: float = 0.0
    """An upper bound of the discounted return (algo polyak, j_star known)."""
    c: float = 0.5
    eta_max: float = 1.0
    eval_episodes: int = 5


def preflight(cfg: Config) -> None:
    if cfg.algo not in ("polyak", "adam"):
        raise ConfigError(f"algo must be polyak or adam, got '{cfg.algo}'")
    if cfg.j_star not in ("running_max", "known"):
        raise ConfigError(f"j_star must be running_max or known, got '{cfg.j_star}'")
    if cfg.episodes < cfg.batch_episodes or cfg.batch_episodes < 2:
        raise ConfigError("need batch_episodes >= 2 (the baseline is a batch mean) and episodes >= batch_episodes")
    check_env(cfg.env, ("discrete", "box"), "REINFORCE")


def run(cfg: Config, ctx) -> dict:
    env = make_env(cfg.env, cfg.seed)
    env.reset(seed=cfg.seed)
    policy = ActorCritic.for_env(env, cfg.hidden)
    params = policy.actor_parameters()
    opt = torch.optim.Adam(params, lr=cfg.lr) if cfg.algo == "adam" else None
    polyak = PolyakStep(params, cfg.c, cfg.eta_max, "running_max" if cfg.j_star == "running_max" else cfg.j_star_value)
    log, etas = EpisodeLog(ctx, cfg.episodes), []
    for _ in log.iterations({"policy": policy, "env": env, "opt": opt, "polyak": polyak, "etas": etas}):
        eps = sample_episodes(env, policy, cfg.batch_episodes)
        grads = torch.autograd.grad(gpomdp_surrogate(policy, eps, cfg.gamma, baseline=True), params)
        disc = [float(discounted_returns(e.rewards, cfg.gamma)[0]) for e in eps]
        if opt is not None:
            for p, g in zip(params, grads):
                p.grad = -g
            opt.step()
            eta = cfg.lr
        else:
            eta = polyak.step(list(grads), float(np.mean(disc)), disc)
        etas.append(eta)
        log.record(eps, len(eps), step_size=eta, grad_norm=float(sum((g ** 2).sum() for g in grads) ** 0.5))
    out = log.summary()
    out["eval_return"] = evaluate_deterministic(policy, cfg.env, cfg.eval_episodes, cfg.seed)
    out["mean_step_size"] = float(np.mean(etas))
    return out
