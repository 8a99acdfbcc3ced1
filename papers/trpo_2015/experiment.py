"""trpo_2015: one row = one algorithm on one env, one seed, through the shared on-policy loop
(common.rl.onpolicy) or, for the sb3-contrib baseline, through common.rl.sb3 with the same env,
seeds, network and evaluation grid."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optrepro.errors import ConfigError
from optrepro.rl.onpolicy import OnPolicyConfig, check_onpolicy, fit_value, normalized, train
from optrepro.rl.sb3 import check_sb3, train_sb3
from optrepro.papers.trpo_2015.method import trpo_step, vpg_step

ALGOS = ("trpo", "vpg", "sb3_trpo")


@dataclass
class Config(OnPolicyConfig):
    algo: str = "trpo"
    """trpo (ours), vpg (vanilla policy gradient, ours) or sb3_trpo (sb3-contrib's TRPO)."""
    max_kl: float = 0.01
    """δ, the trust-region radius in mean KL."""
    cg_iters: int = 15
    cg_damping: float = 0.1
    backtrack: float = 0.8
    max_backtracks: int = 10
    kl_direction: str = "old||new"
    """old||new as in the paper; new||old as sb3-contrib measures it in the line search."""
    kl_per_action_dim: bool = False
    """Average the Gaussian KL over action dimensions (sb3-contrib's convention) instead of summing it."""
    pg_lr: float = 1e-3
    """Adam step size of vpg's policy update."""
    vf_lr: float = 1e-3
    vf_epochs: int = 10
    vf_batch: int = 128
    adam_eps: float = 1e-5
    """Adam's ε for the critic (and vpg's policy) step: SB3's value, so both sides use the same optimizer."""


def preflight(cfg: Config) -> None:
    if cfg.algo not in ALGOS:
        raise ConfigError(f"algo '{cfg.algo}' unknown; valid: {', '.join(ALGOS)}")
    if cfg.kl_direction not in ("old||new", "new||old"):
        raise ConfigError(f"kl_direction must be 'old||new' or 'new||old', got '{cfg.kl_direction}'")
    if cfg.max_kl <= 0 or not 0 < cfg.backtrack < 1 or cfg.cg_iters < 1:
        raise ConfigError("need max_kl > 0, 0 < backtrack < 1 and cg_iters >= 1")
    check_onpolicy(cfg, ("discrete", "box"), cfg.algo)
    if cfg.algo == "sb3_trpo":
        check_sb3(cfg, "trpo")


def run(cfg: Config, ctx) -> dict:
    if cfg.algo == "sb3_trpo":
        return train_sb3(cfg, ctx, "trpo", n_steps=cfg.n_steps, batch_size=cfg.vf_batch, gamma=cfg.gamma,
                         gae_lambda=cfg.gae_lambda, target_kl=cfg.max_kl, cg_max_steps=cfg.cg_iters,
                         cg_damping=cfg.cg_damping, line_search_shrinking_factor=cfg.backtrack,
                         line_search_max_iter=cfg.max_backtracks, n_critic_updates=cfg.vf_epochs,
                         learning_rate=cfg.vf_lr, normalize_advantage=cfg.normalize_advantage)

    def make_update(policy):
        vf_opt = torch.optim.Adam(policy.critic_parameters(), lr=cfg.vf_lr, eps=cfg.adam_eps)
        pg_opt = torch.optim.Adam(policy.actor_parameters(), lr=cfg.pg_lr, eps=cfg.adam_eps)

        def update(b):
            adv = normalized(b.advantages) if cfg.normalize_advantage else b.advantages
            if cfg.algo == "trpo":
                st = trpo_step(policy, b.obs, b.actions, b.logp, adv, cfg.max_kl, cfg.cg_iters, cfg.cg_damping,
                               cfg.backtrack, cfg.max_backtracks, cfg.kl_direction,
                               kl_per_action_dim=cfg.kl_per_action_dim)
                stats = {"kl": st.kl, "accepted": st.accepted}
            else:
                stats = {"pg_loss": vpg_step(policy, pg_opt, b.obs, b.actions, adv)}
            stats["vf_loss"] = fit_value(policy, vf_opt, b, cfg.vf_epochs, cfg.vf_batch)
            return stats
        return update, {"vf_opt": vf_opt, "pg_opt": pg_opt}

    return train(cfg, ctx, make_update)
