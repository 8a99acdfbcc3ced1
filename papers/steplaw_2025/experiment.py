"""steplaw_2025: one row = one fitting choice on the released dense grid. The seed seeds the
bootstrap of the coefficients."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import BaseConfig
from common.errors import ConfigError
from common.scaling import load_runs
from papers.steplaw_2025.method import fit_lr_bs, heldout_gap, near_optimal

DATA = Path(__file__).parent / "data" / "dense_lr_bs_loss.csv"


@dataclass
class Config(BaseConfig):
    data: str = str(DATA)
    threshold: float = 0.0025
    """Runs within this relative loss of their (N, D) group's best count as optimal; 0: argmin only."""
    seq_len: int = 2048
    n_boot: int = 1000


def _load(cfg: Config):
    return load_runs(cfg.data, required=("N", "D", "lr", "bs", "smooth loss"),
                     positive=("N", "D", "lr", "bs", "smooth loss"), min_rows=10)


def preflight(cfg: Config) -> None:
    if cfg.threshold < 0:
        raise ConfigError("threshold must be >= 0")
    _load(cfg)


def run(cfg: Config, ctx) -> dict:
    df = _load(cfg)
    opt = near_optimal(df, cfg.threshold)
    lr_p, bs_p = fit_lr_bs(opt, cfg.seq_len)
    rng = np.random.default_rng(cfg.seed)
    boots = []
    for _ in range(cfg.n_boot):
        lr_b, bs_b = fit_lr_bs(opt.iloc[rng.integers(0, len(opt), len(opt))], cfg.seq_len)
        boots.append(np.r_[lr_b, bs_b])
    boots = np.array(boots)
    gaps = heldout_gap(df, cfg.threshold, cfg.seq_len)
    out = {"lr_intercept": lr_p[0], "lr_coefN": lr_p[1], "lr_coefD": lr_p[2], "bs_intercept": bs_p[0],
           "bs_coefD": bs_p[1], "optimal_runs": float(len(opt)),
           "heldout_gap_pct_mean": float(gaps.mean()), "heldout_gap_pct_max": float(gaps.max())}
    for i, k in enumerate(("lr_intercept", "lr_coefN", "lr_coefD", "bs_intercept", "bs_coefD")):
        out[f"{k}_p05"], out[f"{k}_p95"] = (float(np.percentile(boots[:, i], q)) for q in (5, 95))
    out = {k: float(v) for k, v in out.items()}
    ctx.log(0, **out)
    return out
