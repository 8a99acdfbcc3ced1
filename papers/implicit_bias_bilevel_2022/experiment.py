"""One row, one seed: cold- or warm-start bilevel optimization of the one-angle distillation problem
(method.py). The seed draws the real data (200 points, the true weights' direction; their norm is
3). Reported after `outer_steps` outer steps:

- val_loss: f at the final inner solution (the outer objective: the real data's mean squared error / 2);
- retrain_val_loss: f at the model retrained from scratch on the final distilled point (w_mn = u(x));
- retrain_gap = retrain_val_loss - val_loss: what the inner solution knows beyond the outer parameter;
- gap_to_best_min_norm = val_loss - min over x of f(u(x)): below 0 only if the inner solution is better
  than every minimum-norm (cold-start) solution;
- w_norm: the inner solution's norm (1 on the cold-start circle)."""
from __future__ import annotations

from dataclasses import dataclass

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError

from . import method


@dataclass
class BLOConfig(BaseConfig):
    mode: str = "cold"
    """cold | warm."""
    inner_steps: int = 60
    inner_lr: float = 0.5
    outer_steps: int = 2000
    outer_lr: float = 0.05
    n_real: int = 200
    norm: float = 3.0
    """||w_true||: anything but 1 puts the real data's best model off the cold-start circle."""
    noise: float = 0.1


Config = BLOConfig


def preflight(cfg: BLOConfig) -> None:
    if cfg.mode not in method.MODES:
        raise ConfigError(f"mode must be one of {', '.join(method.MODES)}, got {cfg.mode!r}")
    if min(cfg.inner_steps, cfg.outer_steps, cfg.n_real) < 1 or not (0 < cfg.inner_lr < 2) or cfg.outer_lr <= 0:
        raise ConfigError("need inner_steps, outer_steps, n_real >= 1, 0 < inner_lr < 2 (stable on a unit input) "
                          f"and outer_lr > 0; got {cfg.inner_steps}, {cfg.outer_steps}, {cfg.n_real}, {cfg.inner_lr}, "
                          f"{cfg.outer_lr}")


def run(cfg: BLOConfig, ctx) -> dict:
    prob = method.AngleDistill(cfg.n_real, cfg.norm, cfg.noise, seed=cfg.seed)
    state = method.init_state(cfg.outer_lr)
    x, w = method.run_blo(prob, cfg.mode, cfg.inner_steps, cfg.inner_lr, state, ctx.steps(cfg.outer_steps, state))
    val, retrain = float(prob.f(x, w)), float(prob.f(x, prob.min_norm(x)))
    out = {"val_loss": val, "retrain_val_loss": retrain, "retrain_gap": retrain - val,
           "gap_to_best_min_norm": val - prob.best_min_norm(), "w_norm": float(w.norm())}
    ctx.log(cfg.outer_steps, **out)
    return out
