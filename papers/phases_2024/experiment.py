"""phases_2024: one row = one (α, β) point. A run draws a PLRF problem per model size d (fixed v,
W ~ N(0, 1/d), its own seed per d), trains it by one-pass SGD with a constant learning rate, and
reads the compute-optimal model size d*(f) off the loss at r = f / (B d) steps, per budget f:

- `exact`: the exact expected risk of that SGD (method.expected_risk) on a wide d grid;
- `sgd`: sampled one-pass SGD (method.sgd_eigen), mean over `sgd_seeds` runs, on a smaller grid.

Per budget, a parabola in log d through the lowest loss and `window` sizes on each side gives d*;
only budgets whose lowest loss has `window` sizes on both sides count (the optimum is inside the
grid). Then d* = k f^η and P* = k' f^{-κ} by least squares in log space (common.scaling), with a
bootstrap 5-95% interval on η over the budgets. Beside them: the phase and the exponents
predicted for it (method.predicted_exponents)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.report.compare import seed_values
from optrepro.report.figure import figure
from optrepro.scaling import FitError, compute_optimal_exponent, fit_power_law
from optrepro.track import read_jsonl
from optrepro.papers.phases_2024.method import expected_risk, phase, plrf, predicted_exponents, sgd_eigen, spectrum


KIND = {"exact": 0, "exact_min": 1, "sgd": 2, "sgd_min": 3}
"""The `kind` of each metrics.jsonl record: a point of an exact or sampled IsoFLOP curve, or a minimum."""


@dataclass
class Config(BaseConfig):
    alpha: float = 1.0
    """Data complexity: feature variances j^{-2α} (2α > 1 here)."""
    beta: float = 0.75
    """Target complexity: target coefficients j^{-β}."""
    v: int = 4096
    """Number of data features (fixed for every d; must exceed the largest d)."""
    d_min: int = 32
    d_max: int = 1024
    d_per_octave: int = 4
    """Model sizes: log-spaced from d_min to d_max, this many per factor 2 (rounded to integers)."""
    batch: int = 1
    lr_scale: float = 0.5
    """Learning rate γ = lr_scale / tr(D), the same for every d (tr(D) = Σ_{j<=v} j^{-2α})."""
    f_min: float = 1.0e3
    f_max: float = 1.0e13
    f_per_decade: int = 4
    """Budgets f = r B d, log-spaced; only those with an interior optimum are used."""
    draws: int = 4
    """Exact expected risk averaged over this many draws of W (sizes nested within a draw)."""
    window: int = 2
    n_boot: int = 1000
    sgd_d_min: int = 16
    sgd_d_max: int = 256
    sgd_d_per_octave: int = 2
    sgd_seeds: int = 4
    sgd_max_steps: int = 100000
    """Sampled SGD: budgets up to sgd_d_min x batch x sgd_max_steps (every size reaches them)."""


def _sizes(lo: int, hi: int, per_octave: int) -> list[int]:
    n = int(round(math.log2(hi / lo) * per_octave)) + 1
    return sorted({int(round(x)) for x in np.geomspace(lo, hi, n)})


def _budgets(lo: float, hi: float, per_decade: int) -> np.ndarray:
    return np.geomspace(lo, hi, int(round(math.log10(hi / lo) * per_decade)) + 1)


def preflight(cfg: Config) -> None:
    try:
        phase(cfg.alpha, cfg.beta)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for lo, hi, what in ((cfg.d_min, cfg.d_max, "d"), (cfg.sgd_d_min, cfg.sgd_d_max, "sgd_d")):
        if not 1 <= lo < hi < cfg.v:
            raise ConfigError(f"need 1 <= {what}_min < {what}_max < v, got {lo}, {hi}, v={cfg.v}")
    if not 0 < cfg.f_min < cfg.f_max:
        raise ConfigError(f"need 0 < f_min < f_max, got {cfg.f_min}, {cfg.f_max}")
    if min(cfg.batch, cfg.d_per_octave, cfg.sgd_d_per_octave, cfg.f_per_decade, cfg.window) < 1 or cfg.sgd_seeds < 0:
        raise ConfigError("batch, d_per_octave, sgd_d_per_octave, f_per_decade, window must be >= 1, sgd_seeds >= 0")
    if not cfg.lr_scale > 0:
        raise ConfigError(f"lr_scale must be positive, got {cfg.lr_scale}")


def _steps(f, d: int, batch: int) -> np.ndarray:
    return np.maximum(1, np.round(np.asarray(f) / (batch * d)))


def _fit(C, N, L, cfg: Config, prefix: str) -> dict:
    """(exponents of d*(f) and P*(f), the minima) from IsoFLOP points; None if fewer than 3 budgets
    have their optimum inside the sizes run."""
    try:
        r = compute_optimal_exponent(C, N, L, cfg.window, cfg.n_boot, cfg.seed, inside=True,
                                     min_points=2 * cfg.window + 1)
    except FitError:
        return None
    cs, ns, ls = r.pop("minima")
    kappa, _ = fit_power_law(cs, ls)  # the slope; κ in P* ~ f^{-κ} is its negative
    return {f"{prefix}d_exponent": r["n_exponent"], f"{prefix}d_exponent_p05": r["n_exponent_p05"],
            f"{prefix}d_exponent_p95": r["n_exponent_p95"], f"{prefix}d_coef": r["n_coef"],
            f"{prefix}loss_exponent": -kappa, f"{prefix}budgets": r["budgets"]}, (cs, ns, ls)


def run(cfg: Config, ctx) -> dict:
    lr = cfg.lr_scale / float(np.sum(np.arange(1, cfg.v + 1, dtype=float) ** (-2 * cfg.alpha)))
    sizes = _sizes(cfg.d_min, cfg.d_max, cfg.d_per_octave)
    budgets = _budgets(cfg.f_min, cfg.f_max, cfg.f_per_decade)
    spectra = {}
    sgd_sizes = _sizes(cfg.sgd_d_min, cfg.sgd_d_max, cfg.sgd_d_per_octave) if cfg.sgd_seeds else []
    ctx.no_checkpoint("closed-form expected risks and short SGD simulations on a fixed grid")
    bar = ctx.progress(len(set(sizes) | set(sgd_sizes)))
    step, d_nest = 0, max(sizes + sgd_sizes)
    C, N, L = [], [], []
    for d in sorted(set(sizes) | set(sgd_sizes)):
        losses = 0.0
        for k in range(cfg.draws):
            sp = spectrum(*plrf(cfg.alpha, cfg.beta, cfg.v, d, seed=cfg.seed * 1000 + k, d_nest=d_nest))
            if k == 0:
                spectra[d] = sp
            if d in sizes:
                losses = losses + expected_risk(sp, lr, cfg.batch, _steps(budgets, d, cfg.batch)) / cfg.draws
        if d in sizes:
            for f, loss in zip(budgets, losses):
                C.append(f), N.append(d), L.append(loss)
                ctx.log(step, kind=KIND["exact"], d=d, flops=float(f), loss=float(loss))
                step += 1
        bar.update(1)
    eta, kappa = predicted_exponents(cfg.alpha, cfg.beta)
    out = {"phase_code": {"Ia": 1.0, "II": 2.0, "III": 3.0}[phase(cfg.alpha, cfg.beta)],
           "d_exponent_theory": eta, "loss_exponent_theory": kappa, "lr": lr, "alpha": cfg.alpha, "beta": cfg.beta}
    fit = _fit(np.array(C), np.array(N, float), np.array(L), cfg, "")
    if fit:
        out.update(fit[0])
        for f, n, loss in zip(*fit[1]):
            ctx.log(step, kind=KIND["exact_min"], flops=float(f), d_star=float(n), loss=float(loss))
            step += 1
    if sgd_sizes:
        f_cap = cfg.sgd_d_min * cfg.batch * cfg.sgd_max_steps
        sb = budgets[budgets <= f_cap]
        steps = sorted({int(s) for d in sgd_sizes for s in _steps(sb, d, cfg.batch)})
        risks = sgd_eigen([spectra[d] for d in sgd_sizes], lr, cfg.batch, steps, seeds=cfg.sgd_seeds, seed=cfg.seed)
        mean = risks.mean(axis=1)
        C, N, L, gaps = [], [], [], []
        for i, d in enumerate(sgd_sizes):
            at = [steps.index(int(s)) for s in _steps(sb, d, cfg.batch)]
            exact = expected_risk(spectra[d], lr, cfg.batch, [steps[k] for k in at])
            for f, k, ex in zip(sb, at, exact):
                C.append(f), N.append(d), L.append(mean[i, k])
                gaps.append(abs(mean[i, k] / ex - 1))
                ctx.log(step, kind=KIND["sgd"], d=d, flops=float(f), loss=float(mean[i, k]), exact=float(ex))
                step += 1
        out["sgd_max_rel_gap"] = float(np.max(gaps))
        out["sgd_median_rel_gap"] = float(np.median(gaps))
        fit = _fit(np.array(C), np.array(N, float), np.array(L), cfg, "sgd_")
        if fit:
            out.update(fit[0])
            if "d_exponent" in out:
                out["sgd_exact_gap"] = abs(out["sgd_d_exponent"] - out["d_exponent"])
            for f, n, loss in zip(*fit[1]):
                ctx.log(step, kind=KIND["sgd_min"], flops=float(f), d_star=float(n), loss=float(loss))
                step += 1
    if "d_exponent" not in out:
        raise FitError(f"fewer than 3 budgets in [{cfg.f_min:g}, {cfg.f_max:g}] have their optimum inside "
                       f"d = {cfg.d_min}..{cfg.d_max}: widen the budget range or the model sizes")
    return out


def report_extra(doc: dict, png_path, runs=None) -> list[str]:
    """Per row: loss against compute for every d (exact expected risk), the compute-optimal points
    and the fitted frontier P*(f); and d*(f) with the fitted and the predicted slopes."""
    if runs is None:
        return []
    from matplotlib import colormaps
    logs = {r: read_jsonl(Path(runs) / r / "seed0" / "metrics.jsonl") for r in doc["rows"]}
    rows = [r for r, recs in logs.items() if any(x.get("kind") == KIND["exact_min"] for x in recs)]
    if not rows:
        return []
    lines = ["## Compute-optimal frontiers (seed 0)", "",
             "| row | phase | d* exponent: ours (exact) | sampled SGD | predicted | loss exponent: ours | predicted |",
             "|---|---|---|---|---|---|---|"]
    with figure(png_path, figsize=(4.6 * len(rows), 4.4), ncols=len(rows)) as (fig, axes):
        axes = np.atleast_1d(axes)
        for ax, row in zip(axes, rows):
            recs = logs[row]
            m = {k: float(np.mean(list(seed_values(doc["rows"][row], k).values())))
                 for k in doc["rows"][row]["per_seed"]}
            ds = sorted({x["d"] for x in recs if x.get("kind") == KIND["exact"]})
            for i, d in enumerate(ds):
                pts = sorted((x["flops"], x["loss"]) for x in recs if x.get("kind") == KIND["exact"] and x["d"] == d)
                ax.plot(*zip(*pts), color=colormaps["viridis"](i / max(1, len(ds) - 1)), lw=0.8)
            mins = sorted((x["flops"], x["loss"]) for x in recs if x.get("kind") == KIND["exact_min"])
            ax.plot(*zip(*mins), "ro", ms=3, label="compute-optimal (exact)")
            smins = sorted((x["flops"], x["loss"]) for x in recs if x.get("kind") == KIND["sgd_min"])
            if smins:
                ax.plot(*zip(*smins), "kx", ms=4, label="compute-optimal (sampled SGD)")
            fs = np.array([f for f, _ in mins])
            k = np.exp(np.mean(np.log([l for _, l in mins]) + m["loss_exponent"] * np.log(fs)))
            ax.plot(fs, k * fs ** -m["loss_exponent"], "r--", lw=1, label=f"fit: P* ~ f^-{m['loss_exponent']:.3f}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("compute f = r B d")
            ax.set_ylabel("expected risk")
            ax.set_xlim(min(fs) / 3, max(fs) * 30)
            ax.set_title(f"{row}: α = {m['alpha']:g}, β = {m['beta']:g} (d = {ds[0]:.0f}..{ds[-1]:.0f}, dark to light)",
                         fontsize=9)
            ax.legend(fontsize=7)
            sgd = f"{m['sgd_d_exponent']:.3f}" if "sgd_d_exponent" in m else "n/a"
            code = {1.0: "Ia", 2.0: "II", 3.0: "III"}.get(m.get("phase_code"), "?")
            lines.append(f"| `{row}` | {code} | {m['d_exponent']:.3f} [{m['d_exponent_p05']:.3f}, "
                         f"{m['d_exponent_p95']:.3f}] | {sgd} | {m['d_exponent_theory']:.3f} | "
                         f"{m['loss_exponent']:.3f} | {m['loss_exponent_theory']:.3f} |")
    return lines + ["", f"![frontiers]({Path(png_path).name})", ""]
