"""porian_2024: one row = one experimental condition of the released IsoFLOP runs (dataset,
hyperparameters, warmup, decay, how parameters/FLOPs are counted). A run refits the
compute-optimal exponent from the raw runs with our code; the seed seeds the bootstrap.
`report_extra` draws N*(C) and the fitted power law for every row."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import BaseConfig
from common.errors import ConfigError
from common.report.figure import figure
from common.scaling import load_runs
from papers.porian_2024.method import compute_optimal_exponent

DATA = Path(__file__).parent / "data" / "isoflop_runs.csv"
COLUMNS = ("dataset", "hparams", "warmup", "decay", "param_count", "flops", "n", "t", "loss")


@dataclass
class Config(BaseConfig):
    data: str = str(DATA)
    dataset: str = "rw"
    """rw (RefinedWeb) | owt2 (OpenWebText2)"""
    hparams: str = "base"
    warmup: str = "long"
    decay: str = "kaplan"
    param_count: str = "standard"
    """kaplan (non-embedding, no last layer) | standard (with the last layer) | attention (+ attention FLOPs)"""
    window: int = 2
    """IsoFLOP parabola through the minimum and `window` runs on each side."""
    n_boot: int = 1000


def _select(cfg: Config):
    where = {k: getattr(cfg, k) for k in ("dataset", "hparams", "warmup", "decay", "param_count")}
    return load_runs(cfg.data, required=COLUMNS, positive=("flops", "n", "loss"), min_rows=9, where=where)


def preflight(cfg: Config) -> None:
    if cfg.window < 1:
        raise ConfigError("window must be >= 1")
    _select(cfg)


def run(cfg: Config, ctx) -> dict:
    df = _select(cfg)
    r = compute_optimal_exponent(df.flops.values, df.n.values, df.loss.values, cfg.window, cfg.n_boot, cfg.seed)
    cs, ns = r.pop("minima")
    for c, n in zip(cs, ns):
        ctx.log(int(round(np.log10(c) * 100)), flops=float(c), n_star=float(n))
    return {k: float(v) for k, v in r.items()}


def report_extra(doc: dict, png_path) -> list[str]:
    """Figure: the refitted N*(C) ~ C^a line for every row (with the data's budget range)."""
    C = np.logspace(16, 19, 50)
    with figure(png_path, figsize=(7.5, 4.5)) as (fig, ax):
        for row, a in doc["rows"].items():
            m = a["metrics"]
            if "n_exponent" not in m or "n_coef" not in a.get("per_seed", {}):
                continue
            k = float(np.mean(a["per_seed"]["n_coef"]))
            ax.plot(C, k * C ** m["n_exponent"]["mean"], label=f"{row}: a = {m['n_exponent']['mean']:.3f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel("compute-optimal N*(C)")
        ax.legend(fontsize=7)
        ax.set_title("Refitted compute-optimal model size, per condition")
    return ["## Compute-optimal frontiers", "", f"![frontiers]({Path(png_path).name})", ""]
