"""steplaw_2025.

Table lr_bs_law: one row = one fitting choice on the released dense grid. The seed seeds the
bootstrap of the coefficients.
Table sweep: our tiny-LM grid (common.tasks.charlm), one row per (model, tokens, lr, batch size).
Table sweep_fit: the same law fitted to the sweep (N non-embedding parameters, D tokens, batch
size in tokens), with the same leave-one-out check."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.scaling import load_runs, load_sweep
from optrepro.papers.steplaw_2025.method import fit_lr_bs, heldout_gap, near_optimal

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


@dataclass
class FitConfig(BaseConfig):
    sweep_table: str = "sweep"
    threshold: float = 0.0025
    n_boot: int = 1000


def preflight(cfg) -> None:
    if cfg.threshold < 0:
        raise ConfigError("threshold must be >= 0")
    if isinstance(cfg, Config):
        _load(cfg)


def sweep_frame(out_root, scale: str, table: str = "sweep"):
    """The sweep as the released grid's columns: N (non-embedding), D (the nominal token budget:
    runs of one budget train within one batch of it), lr, bs (sequences),
    `smooth loss` (the final validation loss; ours is not smoothed), and the context length."""
    df = load_sweep(out_root, "steplaw_2025", table, scale, min_points=8)
    out = df.rename(columns={"n_params": "N", "tokens": "D", "optim.lr": "lr", "train.batch_size": "bs",
                             "val_loss": "smooth loss"})
    return out[["N", "D", "lr", "bs", "smooth loss", "context"]], df.attrs["not_ok"]


def run_sweep_fit(cfg: FitConfig, ctx) -> dict:
    df, not_ok = sweep_frame(ctx.out_root, ctx.scale, cfg.sweep_table)
    if df.groupby(["N", "D"]).ngroups < 3:
        raise ConfigError("the sweep has fewer than 3 (N, D) settings: lr* ~ N^a D^b has 3 coefficients")
    return _fit(df, cfg, ctx, int(df.context.iloc[0]), extra={"sweep_points": float(len(df)),
                                                             "sweep_not_ok": float(not_ok)})


def run(cfg: Config, ctx) -> dict:
    return _fit(_load(cfg), cfg, ctx, cfg.seq_len)


def _fit(df, cfg, ctx, seq_len: int, extra: dict | None = None) -> dict:
    """Fit the law to the near-optimal runs, bootstrap its coefficients, leave-one-out gaps."""
    ctx.no_checkpoint("a fit to finished runs: seconds")
    opt = near_optimal(df, cfg.threshold)
    lr_p, bs_p = fit_lr_bs(opt, seq_len)
    rng = np.random.default_rng(cfg.seed)
    boots = []
    for _ in range(cfg.n_boot):
        lr_b, bs_b = fit_lr_bs(opt.iloc[rng.integers(0, len(opt), len(opt))], seq_len)
        boots.append(np.r_[lr_b, bs_b])
    boots = np.array(boots)
    gaps = heldout_gap(df, cfg.threshold, seq_len)
    out = {"lr_intercept": lr_p[0], "lr_coefN": lr_p[1], "lr_coefD": lr_p[2], "bs_intercept": bs_p[0],
           "bs_coefD": bs_p[1], "optimal_runs": float(len(opt)),
           "heldout_gap_pct_mean": float(gaps.mean()), "heldout_gap_pct_max": float(gaps.max())}
    for i, k in enumerate(("lr_intercept", "lr_coefN", "lr_coefD", "bs_intercept", "bs_coefD")):
        out[f"{k}_p05"], out[f"{k}_p95"] = (float(np.percentile(boots[:, i], q)) for q in (5, 95))
    out = {k: float(v) for k, v in {**out, **(extra or {})}.items()}
    ctx.log(0, **out)
    return out
