"""porian_2024.

Tables exponents_rw / exponents_owt2: one row = one experimental condition of the released
IsoFLOP runs (dataset, hyperparameters, warmup, decay, how parameters/FLOPs are counted). A run
refits the compute-optimal exponent from the raw runs with our code; the seed seeds the bootstrap.

Table sweep: our own tiny-LM runs (common.tasks.charlm), one row per (model size, warmup, lr),
each trained to a compute budget with the validation loss logged along the way.
Table sweep_fit: one row = one condition (FLOP count, warmup, lr tuned or not) fitted on the
sweep's curves: IsoFLOP points read off the curves, parabola minima, N*(C) ~ C^a.
`report_extra` draws N*(C) and the fitted power law for every row, and for sweep_fit the
loss-vs-compute curves with the IsoFLOP minima."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.report.compare import seed_values
from optrepro.report.figure import figure
from optrepro.scaling import (ChinchillaFit, compute_optimal_exponent, compute_optimal_exponent_interp, fit_chinchilla,
                              isoflop_points, load_runs, load_sweep)
from optrepro.track import read_jsonl

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
    fit: str = "parabola"
    """parabola: our approach 2 (a parabola in log N through the minimum and `window` runs on each
    side; bootstrap over budgets) | interp: the authors' procedure (Akima interpolation, seed-noise
    bootstrap, common.scaling.compute_optimal_exponent_interp)."""
    window: int = 2
    """IsoFLOP parabola through the minimum and `window` runs on each side."""
    n_boot: int = 1000


SEED_NOISE = {"rw": dict(noise_low=0.002, noise_high=0.05, log_low=3.0, log_high=7.0),
              "owt2": dict(noise_low=0.01, noise_high=0.1, log_low=3.0, log_high=6.0)}
"""The authors' loss-noise levels per dataset (their configs.py RW_SEED_CONFIG / OWT2_SEED_CONFIG)."""


def _select(cfg: Config):
    where = {k: getattr(cfg, k) for k in ("dataset", "hparams", "warmup", "decay", "param_count")}
    return load_runs(cfg.data, required=COLUMNS, positive=("flops", "n", "loss"), min_rows=9, where=where)


@dataclass
class FitConfig(BaseConfig):
    sweep_table: str = "sweep"
    count: str = "standard"
    """kaplan: N = non-embedding parameters | standard: N also counts the last layer (d x V)."""
    warmup: str = "short"
    """long: the sweep's fixed-token warmup runs | short: its N-scaled warmup runs."""
    lr: float = 0.0
    """Use the sweep's runs at this learning rate; 0: tuned, the best lr per model and budget."""
    budgets: list = field(default_factory=lambda: [5e10, 1e11, 2e11, 5e11])
    window: int = 2
    edge: str = "skip"
    """A budget whose lowest loss is at the smallest or largest model: skip | extend (extrapolate)."""
    inside: bool = True
    """Leave out budgets whose parabola vertex lies outside the runs it was fitted to."""
    n_boot: int = 1000


COUNTS = {"kaplan": "n_params", "standard": "n_params_head"}
WARMUPS = {"long": "warmup_tokens", "short": "warmup_per_param"}


def preflight(cfg) -> None:
    if isinstance(cfg, FitConfig):
        if cfg.count not in COUNTS or cfg.warmup not in WARMUPS:
            raise ConfigError(f"count must be one of {', '.join(COUNTS)} and warmup one of {', '.join(WARMUPS)}")
        if len(cfg.budgets) < 3 or min(cfg.budgets) <= 0:
            raise ConfigError("budgets: give at least 3 positive compute budgets")
        return
    if cfg.window < 1:
        raise ConfigError("window must be >= 1")
    if cfg.fit not in ("parabola", "interp"):
        raise ConfigError(f"fit must be parabola or interp, got {cfg.fit!r}")
    if cfg.fit == "interp" and cfg.dataset not in SEED_NOISE:
        raise ConfigError(f"fit interp knows the authors' noise levels for {', '.join(SEED_NOISE)} only")
    _select(cfg)


def sweep_isoflop(df, cfg: FitConfig):
    """(C, N, L) IsoFLOP points of one condition: per model and budget, the loss read off the
    curve of the chosen lr, or (tuned) the lowest over the lrs. The model is identified by its
    non-embedding size; N is counted as `cfg.count` says."""
    df = df[df[WARMUPS[cfg.warmup]] > 0]
    if cfg.lr:
        df = df[np.isclose(df["optim.lr"], cfg.lr)]
    pts = {}
    for _, r in df.iterrows():
        C, N, L = isoflop_points([r[COUNTS[cfg.count]]], [r["curve"]], cfg.budgets)
        for c, n, l in zip(C, N, L):
            key = (c, n)
            pts[key] = min(pts.get(key, np.inf), l)
    if not pts:
        raise ConfigError(f"no sweep runs match count={cfg.count} warmup={cfg.warmup} lr={cfg.lr or 'tuned'}")
    C, N = np.array([k[0] for k in pts]), np.array([k[1] for k in pts])
    return C, N, np.array(list(pts.values()))


def run_sweep_fit(cfg: FitConfig, ctx) -> dict:
    ctx.no_checkpoint("a fit to the sweep's finished runs")
    df = load_sweep(ctx.out_root, "porian_2024", cfg.sweep_table, ctx.scale, curves=True, min_points=3)
    C, N, L = sweep_isoflop(df, cfg)
    r = compute_optimal_exponent(C, N, L, cfg.window, cfg.n_boot, cfg.seed, cfg.edge, cfg.inside)
    cs, ns, _ = r.pop("minima")
    for i, (c, n, l) in enumerate(zip(C, N, L)):
        ctx.log(i, point_flops=float(c), point_n=float(n), point_loss=float(l))
    for j, (c, n) in enumerate(zip(cs, ns)):
        ctx.log(len(C) + j, flops=float(c), n_star=float(n))
    # Chinchilla's approach 3 on the same points (D = C / 6N): the exponent its fit implies
    fit: ChinchillaFit = fit_chinchilla(N, C / (6 * N), L, top_k=100)
    return {**{k: float(v) for k, v in r.items()}, "chin_alpha": fit.alpha, "chin_beta": fit.beta,
            "chin_exponent": fit.beta / (fit.alpha + fit.beta), "points": float(len(C)),
            "sweep_points": float(len(df)), "sweep_not_ok": float(df.attrs["not_ok"])}


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("a fit to the authors' released runs: seconds")
    df = _select(cfg)
    if cfg.fit == "interp":
        r = compute_optimal_exponent_interp(df.flops.values, df.n.values, df.loss.values, SEED_NOISE[cfg.dataset],
                                            cfg.n_boot, cfg.seed)
    else:
        r = compute_optimal_exponent(df.flops.values, df.n.values, df.loss.values, cfg.window, cfg.n_boot, cfg.seed)
    cs, ns, _ = r.pop("minima")
    for c, n in zip(cs, ns):
        ctx.log(int(round(np.log10(c) * 100)), flops=float(c), n_star=float(n))
    return {k: float(v) for k, v in r.items()}


def _frontier(ax, agg: dict, row: str, C, digits: int = 2, **kw) -> None:
    """The fitted N*(C) = k C^a of one row (mean over seeds), if the row has one."""
    m = agg["metrics"]
    if "n_exponent" in m and "n_coef" in agg.get("per_seed", {}):
        k, a = float(np.mean(list(seed_values(agg, "n_coef").values()))), m["n_exponent"]["mean"]
        ax.plot(C, k * C ** a, label=f"{row}: a = {a:.{digits}f}", **kw)


def _frontier_axes(ax, xlabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("compute-optimal N*(C)")
    ax.legend(fontsize=7)
    ax.set_title(title)


def sweep_figure(doc: dict, png_path, runs) -> list[str]:
    """Left: IsoFLOP curves (loss vs N per budget) of each row's points, vertices marked.
    Right: N*(C) per row with its fitted power law."""
    from matplotlib.ticker import NullFormatter
    logs = {r: read_jsonl(Path(runs) / r / "seed0" / "metrics.jsonl") for r in doc["rows"]}
    rows = [r for r, recs in logs.items() if any("n_star" in x for x in recs)]
    if not rows:
        return ["No row produced a compute-optimal exponent: no IsoFLOP figure.", ""]
    shown = "tuned" if "tuned" in rows else rows[-1]
    with figure(png_path, figsize=(11.0, 4.3), ncols=2) as (fig, axes):
        ax, bx = axes
        recs = logs[shown]
        pts = [(r["point_flops"], r["point_n"], r["point_loss"]) for r in recs if "point_flops" in r]
        for c in sorted({p[0] for p in pts}):
            xs = sorted((p[1], p[2]) for p in pts if p[0] == c)
            ax.plot([x[0] for x in xs], [x[1] for x in xs], marker="o", ms=3, label=f"C = {c:.0e}")
        for r in recs:
            if "n_star" in r:
                ax.axvline(r["n_star"], color="grey", lw=0.5, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("parameters N (with the last layer)")
        ax.set_ylabel("validation loss at D = C / 6N")
        ax.set_title(f"IsoFLOP curves, row '{shown}' (dotted: N*)")
        ax.legend(fontsize=7)
        for row in rows:
            mins = [(r["flops"], r["n_star"]) for r in logs[row] if "n_star" in r]
            line = bx.plot([c for c, _ in mins], [n for _, n in mins], marker="o", ls="none")[0]
            _frontier(bx, doc["rows"][row], row, np.geomspace(min(c for c, _ in mins), max(c for c, _ in mins), 20),
                      color=line.get_color())
        _frontier_axes(bx, "compute C (FLOPs, as the row counts them)", "Compute-optimal model size per condition")
    return ["## IsoFLOP curves and frontiers on our sweep", "", f"![isoflop]({Path(png_path).name})", ""]


def report_extra(doc: dict, png_path, runs=None) -> list[str]:
    """exponents_*: the refitted N*(C) ~ C^a line for every row (the data's budget range);
    sweep_fit: IsoFLOP curves and frontiers (sweep_figure); sweep: nothing extra."""
    if doc["table"] == "sweep":
        return []
    if doc["table"] == "sweep_fit":
        return sweep_figure(doc, png_path, runs) if runs is not None else []
    C = np.logspace(16, 19, 50)
    with figure(png_path, figsize=(7.5, 4.5)) as (fig, ax):
        for row, a in doc["rows"].items():
            _frontier(ax, a, row, C, digits=3)
        _frontier_axes(ax, "compute C (FLOPs)", "Refitted compute-optimal model size, per condition")
    return ["## Compute-optimal frontiers", "", f"![frontiers]({Path(png_path).name})", ""]
