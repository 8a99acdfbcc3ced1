"""ppo_ewma_2022: one row = PPO or PPO-EWMA at one batch-size factor c, one seed. The batch is
divided by c by running n_envs / c environments (the number of minibatches and epochs per
iteration stays the same), with the paper's hyper-parameter adjustments applied (method.adjust)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from optrepro.errors import ConfigError
from optrepro.rl.onpolicy import OnPolicyConfig, check_onpolicy, minibatch_epochs, optimizer_step, train
from optrepro.papers.ppo_ewma_2022.method import EWMAModel, EwmaMoments, adjust, clipped_objective

ALGOS = ("ppo", "ppo_ewma")


@dataclass
class Config(OnPolicyConfig):
    algo: str = "ppo_ewma"
    """ppo (proximal = behavior policy) or ppo_ewma (proximal = EWMA of the weights)."""
    batch_factor: int = 1
    """c: the batch (n_envs x n_steps) is divided by c through n_envs; hyper-parameters adjusted."""
    adjust: bool = True
    """Apply the paper's adjustments for c (False: the base hyper-parameters at every batch size)."""
    n_envs: int = 8
    n_steps: int = 128
    n_minibatches: int = 4
    n_epochs: int = 1
    lr: float = 1e-3
    """Adam step size at c = 1."""
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    clip: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    prox_decay: float = 0.75
    """β_prox at c = 1 (mean age 3 optimizer steps)."""
    adv_decay: float = 0.0
    """EWMA decay of the advantage moments at c = 1 (0: per-batch normalization)."""
    imp_samp_max: float = 100.0
    max_grad_norm: float = 0.5


def preflight(cfg: Config) -> None:
    if cfg.algo not in ALGOS:
        raise ConfigError(f"algo '{cfg.algo}' unknown; valid: {', '.join(ALGOS)}")
    if cfg.batch_factor < 1 or cfg.n_envs % cfg.batch_factor:
        raise ConfigError(f"batch_factor must be >= 1 and divide n_envs ({cfg.n_envs}), got {cfg.batch_factor}")
    if (cfg.n_envs // cfg.batch_factor) * cfg.n_steps < cfg.n_minibatches:
        raise ConfigError("the divided batch is smaller than n_minibatches")
    if not 0 <= cfg.prox_decay < 1 or not 0 <= cfg.adv_decay < 1 or not 0 < cfg.clip < 1:
        raise ConfigError("need 0 <= prox_decay, adv_decay < 1 and 0 < clip < 1")
    check_onpolicy(cfg, ("discrete", "box"), cfg.algo)


def run(cfg: Config, ctx) -> dict:
    c = cfg.batch_factor if cfg.adjust else 1
    hp = adjust(cfg.lr, cfg.betas, cfg.prox_decay, cfg.adv_decay, c)
    gen = torch.Generator().manual_seed(cfg.seed)
    clip_fracs: list[float] = []

    def make_update(policy):
        opt = torch.optim.Adam(policy.parameters(), lr=hp.lr, betas=hp.betas)
        prox = EWMAModel(policy, hp.prox_decay) if cfg.algo == "ppo_ewma" else None
        moments = EwmaMoments(hp.adv_decay)

        def update(b):
            mean, var = moments.update(b.advantages)
            adv = (b.advantages - mean) / (var ** 0.5 + 1e-8)

            def step(idx):
                obs, act = b.obs[idx], b.actions[idx]
                d = policy.dist(obs)
                logp = d.log_prob(act)
                if prox is None:
                    logp_prox = b.logp[idx]
                else:
                    with torch.no_grad():
                        logp_prox = prox.module.dist(obs).log_prob(act)
                pg = clipped_objective(logp, b.logp[idx], logp_prox, adv[idx], cfg.clip, cfg.imp_samp_max)
                vf = ((policy.value(obs) - b.returns[idx]) ** 2).mean()
                loss = pg + cfg.vf_coef * vf - cfg.ent_coef * d.entropy().mean()
                optimizer_step(opt, loss, policy.parameters(), cfg.max_grad_norm)
                if prox is not None:
                    prox.update(policy)
                with torch.no_grad():
                    r = logp - logp_prox
                    clipped = ((r > np.log1p(cfg.clip)) | (r < np.log1p(-cfg.clip))).float().mean()
                return pg.item(), vf.item(), float((r ** 2).mean() / 2), float(clipped)

            stats = minibatch_epochs(len(adv), cfg.n_epochs, len(adv) // cfg.n_minibatches, step, gen)
            pg_m, vf_m, kl_m, clip_m = np.mean(stats, 0)
            clip_fracs.append(float(clip_m))
            return {"pg_loss": float(pg_m), "vf_loss": float(vf_m), "approx_kl_prox": float(kl_m),
                    "clip_frac": float(clip_m)}
        return update, {"opt": opt, "prox": prox, "moments": moments, "gen": gen, "clip_fracs": clip_fracs}

    out = train(dataclasses.replace(cfg, n_envs=cfg.n_envs // cfg.batch_factor), ctx, make_update)
    out["lr"] = hp.lr
    out["clip_frac"] = float(np.mean(clip_fracs))
    return out
