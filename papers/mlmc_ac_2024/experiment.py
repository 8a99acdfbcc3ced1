"""mlmc_ac_2024.

Table grid: one row = one actor-critic (MAC, or vanilla with a fixed rollout length) on one sparse
gridworld (envs.gridworld), all at the same number of transitions. The seed draws the chain's
actions and transitions (and MAC's rollout lengths); the learned policy is scored by its exact
long-run average reward, as a fraction of the optimum (relative value iteration)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optrepro.config import BaseConfig
from optrepro.envs.gridworld import grid_mdp
from optrepro.errors import ConfigError
from optrepro.papers.mlmc_ac_2024.method import actor_critic
from optrepro.rl.average_reward import average_reward, optimal_average_reward, softmax_policy

METHODS = ("mac", "ac")


@dataclass
class Config(BaseConfig):
    n: int = 4
    """Grid side (n x n states)."""
    slip: float = 0.1
    method: str = "mac"
    batch: int = 1
    """Vanilla actor-critic's rollout length (transitions per update)."""
    t_max: int = 64
    """MAC's longest rollout (a power of two)."""
    budget: int = 100_000
    """Transitions per run."""
    lr_actor: float = 0.5
    lr_critic: float = 0.1
    lr_eta: float = 0.05
    curve_points: int = 10


def preflight(cfg: Config) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method '{cfg.method}' unknown; valid: {', '.join(METHODS)}")
    if cfg.n < 2 or not 0 <= cfg.slip <= 1:
        raise ConfigError(f"need n >= 2 and slip in [0, 1], got n={cfg.n}, slip={cfg.slip}")
    if cfg.batch < 1 or cfg.budget < 1 or cfg.curve_points < 1:
        raise ConfigError("batch, budget and curve_points must be >= 1")
    if cfg.t_max < 2 or cfg.t_max & (cfg.t_max - 1):
        raise ConfigError(f"t_max must be a power of two >= 2, got {cfg.t_max}")
    if not (cfg.lr_actor > 0 and cfg.lr_critic > 0 and cfg.lr_eta > 0):
        raise ConfigError("step sizes must be > 0")


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("a tabular actor-critic of seconds")
    P, R = grid_mdp(cfg.n, cfg.slip)
    opt = optimal_average_reward(P, R)
    marks = list(np.linspace(cfg.budget / cfg.curve_points, cfg.budget, cfg.curve_points).astype(int))

    def on_iter(used, theta):
        while marks and used >= marks[0]:
            ctx.log(int(marks.pop(0)), ratio=average_reward(P, R, softmax_policy(theta)) / opt)

    theta, _, eta_est, iters = actor_critic(P, R, cfg.budget, np.random.default_rng(cfg.seed), cfg.method == "mac",
                                            cfg.batch, cfg.t_max, cfg.lr_actor, cfg.lr_critic, cfg.lr_eta, on_iter)
    eta = average_reward(P, R, softmax_policy(theta))
    out = {"ratio": eta / opt, "avg_reward": eta, "optimal": opt, "eta_estimate": float(eta_est),
           "updates": float(iters)}
    ctx.log(cfg.budget, **out)
    return out
