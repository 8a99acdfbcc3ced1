"""harpg_2022: one row = one of REINFORCE, N-PG, N-PG-IGT, N-HARPG on one env, one seed; return of
the on-policy episodes against the number of sampled trajectories."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.rl import check_env, evaluate_deterministic, make_env
from optrepro.rl.episodes import EpisodeLog, sample_episodes
from optrepro.rl.policy import ActorCritic
from optrepro.papers.harpg_2022.method import SCHEDULES, State, step


@dataclass
class Config(BaseConfig):
    env: str = "CartPole-v1"
    algo: str = "nharpg"
    """reinforce, npg, npg_igt or nharpg."""
    trajectories: int = 1000
    """Budget: sampled trajectories (N-HARPG draws 2 per iteration, the others 1)."""
    gamma: float = 0.99
    step_size: float = 0.1
    """α for reinforce, γ_0 for the normalized methods."""
    hidden: list = field(default_factory=lambda: [32])
    hessian_scale: float = 1.0
    """N-HARPG only: 0 removes the Hessian correction (normalized momentum PG), an ablation."""
    eval_episodes: int = 5
    log_every: int = 10


def preflight(cfg: Config) -> None:
    if cfg.algo not in SCHEDULES:
        raise ConfigError(f"algo '{cfg.algo}' unknown; valid: {', '.join(SCHEDULES)}")
    if cfg.trajectories < 2 or cfg.step_size <= 0:
        raise ConfigError("need trajectories >= 2 and step_size > 0")
    check_env(cfg.env, ("discrete", "box"), cfg.algo)


def run(cfg: Config, ctx) -> dict:
    env = make_env(cfg.env, cfg.seed)
    env.reset(seed=cfg.seed)
    policy = ActorCritic.for_env(env, cfg.hidden)
    params = policy.actor_parameters()
    gen = torch.Generator().manual_seed(cfg.seed)
    st, log = State(), EpisodeLog(ctx, cfg.trajectories, log_every=cfg.log_every)
    for _ in log.iterations({"policy": policy, "env": env, "gen": gen, "method_state": st}):
        eps, drawn = step(cfg.algo, policy, params, lambda n: sample_episodes(env, policy, n), cfg.gamma,
                          cfg.step_size, st, gen, cfg.hessian_scale)
        log.record(eps, drawn)
    out = log.summary()
    out["eval_return"] = evaluate_deterministic(policy, cfg.env, cfg.eval_episodes, cfg.seed)
    return out
