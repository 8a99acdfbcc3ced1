"""diloco_scaling_2025.

Table sweep: one row = one method (data-parallel, or DiLoCo with M replicas) at one model size, the
inner learning rate tuned per row over one grid; every run is common.tasks.dist_lm (the tiny GPT
trained by M workers, simulated in one process or spread over torchrun's processes).
Table laws: for one seed of the sweep, the paper's per-method power law L(N) = A N^alpha fitted to
the method's sizes (each at the learning rate the sweep's report chose), the same law fitted to all
but the largest size and extrapolated to it, and each size's loss relative to data-parallel's."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError, DataMissing
from optrepro.scaling import fit_power_law, tuned_results
from optrepro.tasks import dist_lm

PID = "diloco_scaling_2025"


@dataclass
class LawsConfig(BaseConfig):
    sweep_table: str = "sweep"
    sizes: list = field(default_factory=list)
    """This method's rows of the sweep, smallest model first (at least 3)."""
    baseline: list = field(default_factory=list)
    """Data-parallel's rows at the same sizes, in the same order."""


def preflight(cfg) -> None:
    if not isinstance(cfg, LawsConfig):
        dist_lm.preflight(cfg)
        return
    if len(cfg.sizes) < 3:
        raise ConfigError(f"sizes lists {len(cfg.sizes)} sweep rows; the fit and its extrapolation check need at "
                          f"least 3 model sizes")
    if len(cfg.baseline) != len(cfg.sizes):
        raise ConfigError(f"baseline lists {len(cfg.baseline)} rows for {len(cfg.sizes)} sizes; give data-parallel's "
                          f"row at every size")


def run_laws(cfg: LawsConfig, ctx) -> dict:
    ctx.no_checkpoint("a fit to finished runs: milliseconds")
    res = tuned_results(ctx.out_root, PID, cfg.sweep_table, ctx.scale, rows=list(dict.fromkeys(cfg.sizes + cfg.baseline)))
    seed = str(cfg.seed)

    def value(row: str, metric: str) -> float:
        v = res[row].get(metric, {}).get(seed)
        if v is None:
            raise DataMissing(f"{PID}/{cfg.sweep_table} row {row} has no finished seed {seed} (metric {metric}); "
                              f"run the sweep with this seed first")
        return v

    n = [value(r, "n_params") for r in cfg.sizes]
    if sorted(n) != n or len(set(n)) != len(n):
        raise ConfigError(f"sizes must list strictly growing models; their n_params are {n}")
    loss = [value(r, "val_loss") for r in cfg.sizes]
    base = [value(r, "val_loss") for r in cfg.baseline]
    alpha, coef = fit_power_law(n, loss)
    # the line through the smaller sizes in log-log (exact for two of them), evaluated at the largest
    slope, icpt = np.polyfit(np.log(n[:-1]), np.log(loss[:-1]), 1)
    pred = float(np.exp(icpt + slope * np.log(n[-1])))
    pct = [100.0 * (a - b) / b for a, b in zip(loss, base)]
    out = {"alpha": alpha, "coef_A": coef, "pred_largest": pred, "extrap_err_pct": 100.0 * abs(pred - loss[-1]) / loss[-1],
           "loss_smallest": loss[0], "loss_largest": loss[-1],
           "pct_vs_dp_smallest": pct[0], "pct_vs_dp_largest": pct[-1], "pct_change": pct[-1] - pct[0]}
    out = {k: float(v) for k, v in out.items()}
    ctx.log(0, **out)
    return out
