"""mdpo_2020: one row = on-policy MDPO (ours) or SB3's PPO / sb3-contrib's TRPO on one env, one
seed, all through the same env construction, seeds, networks and evaluation grid."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from optrepro.errors import ConfigError
from optrepro.rl.onpolicy import OnPolicyConfig, check_onpolicy, minibatch_epochs, normalized, optimizer_step, train
from optrepro.rl.sb3 import check_sb3, train_sb3
from optrepro.papers.mdpo_2020.method import kl_weight, mdpo_loss

ALGOS = ("mdpo", "sb3_ppo", "sb3_trpo")


@dataclass
class Config(OnPolicyConfig):
    algo: str = "mdpo"
    """mdpo (ours), sb3_ppo or sb3_trpo."""
    lr: float = 3e-4
    """Adam step size (MDPO and PPO)."""
    n_epochs: int = 10
    """m: passes over the batch per iteration (MDPO and PPO)."""
    batch_size: int = 64
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    clip: float = 0.2
    """PPO's clip range (sb3_ppo only)."""


def preflight(cfg: Config) -> None:
    if cfg.algo not in ALGOS:
        raise ConfigError(f"algo '{cfg.algo}' unknown; valid: {', '.join(ALGOS)}")
    check_onpolicy(cfg, ("discrete", "box"), cfg.algo)
    if cfg.algo != "mdpo":
        check_sb3(cfg, cfg.algo[4:])


def run(cfg: Config, ctx) -> dict:
    if cfg.algo == "sb3_ppo":
        return train_sb3(cfg, ctx, "ppo", n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
                         learning_rate=cfg.lr, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip,
                         vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm)
    if cfg.algo == "sb3_trpo":
        return train_sb3(cfg, ctx, "trpo", n_steps=cfg.n_steps, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda)
    n_iters = -(-cfg.total_steps // (cfg.n_steps * cfg.n_envs))

    def make_update(policy):
        opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)
        it = [0]

        def update(b):
            w = kl_weight(it[0], n_iters)
            it[0] += 1
            with torch.no_grad():
                old = policy.dist(b.obs)

            def step(idx):
                old_mb = type(old)(logits=old.logits[idx]) if policy.discrete else type(old)(old.loc[idx], old.scale[idx])
                pi_loss, k = mdpo_loss(policy.dist(b.obs[idx]), old_mb, b.actions[idx], b.logp[idx],
                                       normalized(b.advantages[idx]), w)
                vf = ((policy.value(b.obs[idx]) - b.returns[idx]) ** 2).mean()
                optimizer_step(opt, pi_loss + cfg.vf_coef * vf, policy.parameters(), cfg.max_grad_norm)
                return k.item()

            kls = minibatch_epochs(len(b.advantages), cfg.n_epochs, cfg.batch_size, step)
            return {"kl": float(np.mean(kls)), "kl_weight": w}
        return update, {"opt": opt, "iteration": it}

    return train(cfg, ctx, make_update)
