"""spo_2024.

Table games: one row = one algorithm on one preference game (common.rl.preference). A run trains
the algorithm (the seed draws the sampled responses and the noisy comparisons; the game itself is
fixed by game_seed) and measures its policies against the game's Minimax Winner, computed by
linear programming."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.papers.spo_2024.method import reward_model, spo_exact, spo_sampled
from optrepro.rl.preference import KINDS, exploitability, minimax_winner, preference_matrix

METHODS = ("spo_exact", "spo_sampled", "reward_model")


@dataclass
class Config(BaseConfig):
    game: str = "cyclic"
    """transitive | cyclic | random (common.rl.preference.preference_matrix)"""
    k: int = 3
    margin: float = 0.4
    game_seed: int = 0
    method: str = "spo_sampled"
    iters: int = 2000
    batch: int = 8
    """SPO's responses per iteration (every pair compared once: batch (batch - 1) / 2 queries)."""
    lr: float = 0.5
    """REINFORCE step size (spo_sampled) or multiplicative-weights rate (spo_exact)."""
    tau: float = 0.1
    """The reward model's KL coefficient: pi ~ exp(r / tau)."""


def preflight(cfg: Config) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method '{cfg.method}' unknown; valid: {', '.join(METHODS)}")
    if cfg.game not in KINDS:
        raise ConfigError(f"game '{cfg.game}' unknown; valid: {', '.join(KINDS)}")
    preference_matrix(cfg.game, cfg.k, cfg.game_seed, cfg.margin)  # raises on a bad k / margin
    if cfg.iters < 1 or cfg.batch < 2:
        raise ConfigError(f"iters must be >= 1 and batch >= 2, got {cfg.iters}, {cfg.batch}")
    if not (cfg.lr > 0 and cfg.tau > 0):
        raise ConfigError(f"lr and tau must be > 0, got {cfg.lr}, {cfg.tau}")


def queries(cfg: Config) -> int:
    """Preference queries SPO makes over its run; the reward model gets as many."""
    return cfg.iters * cfg.batch * (cfg.batch - 1) // 2


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("a preference game of K responses: well under a second")
    P = preference_matrix(cfg.game, cfg.k, cfg.game_seed, cfg.margin)
    winner, value = minimax_winner(P)
    rng = np.random.default_rng(cfg.seed)
    if cfg.method == "spo_exact":
        last, avg = spo_exact(P, cfg.iters, cfg.lr)
    elif cfg.method == "spo_sampled":
        last, avg = spo_sampled(P, cfg.iters, cfg.batch, cfg.lr, rng)
    else:
        last, _ = reward_model(P, queries(cfg), cfg.tau, rng)
        avg = last
    out = {"exploit_avg": exploitability(P, avg), "exploit_last": exploitability(P, last),
           "l1_to_winner": float(np.abs(avg - winner).sum()), "max_prob": float(avg.max()),
           "game_value": value, "queries": float(queries(cfg))}
    ctx.log(cfg.iters, **out)
    return out
