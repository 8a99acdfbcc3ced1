"""Our own scaling sweeps: read the finished points of a sweep table (each point a normal
`repro run`, see ScaleSpec.grid) into a data frame, and turn loss-vs-tokens curves into IsoFLOP
points under any FLOP-counting convention.

A sweep table and the table that fits laws to it are separate: the fit's run reads the sweep's
result.json / metrics.jsonl files from the same --out directory, and says which command to run
when they are missing. Only points with status ok are used; how many were skipped is reported."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from optrepro.errors import DataMissing
from optrepro.scaling.fit import isoflop_minima


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[prefix + k] = v
    return out


def _run_command(out_root, pid: str, table: str, scale: str) -> str:
    out = f" --out {out_root}" if str(out_root) != "runs" else ""
    return f"repro run {pid} {table} --scale {scale} --jobs 2{out}"


def load_sweep(out_root, pid: str, table: str, scale: str, curves: bool = False, min_points: int = 1):
    """One row per finished (row, seed): the run's resolved config (flattened: `optim.lr`, ...),
    its final metrics (`<name>_measured` where a metric shares a config key's name, e.g. the
    nominal `tokens` budget and the tokens actually trained), `row`, `seed`; with `curves`, also `curve`: the metrics.jsonl records that
    carry `val_loss` and `tokens`. Raises DataMissing naming the command when too few are done."""
    base = Path(out_root) / pid / table / scale
    records, not_ok = [], 0
    for res in sorted(base.glob("*/seed*/result.json")):
        r = json.loads(res.read_text())
        if r.get("status") != "ok":
            not_ok += 1
            continue
        cfg = _flatten(yaml.safe_load((res.parent / "config.yaml").read_text()) or {})
        rec = {**cfg, **{(f"{k}_measured" if k in cfg else k): v for k, v in r["metrics"].items()},
               "row": r["row"], "seed": r["seed"]}
        if curves:
            pts = []
            with open(res.parent / "metrics.jsonl") as f:
                for line in f:
                    m = json.loads(line)
                    if "val_loss" in m and "tokens" in m:
                        pts.append((float(m["tokens"]), float(m["val_loss"])))
            rec["curve"] = sorted(set(pts))
        records.append(rec)
    if len(records) < min_points:
        raise DataMissing(f"{base}: {len(records)} finished sweep points ({not_ok} not ok); this analysis needs "
                          f"at least {min_points}. Run the sweep first: {_run_command(out_root, pid, table, scale)} "
                          f"(add --resume to keep the points already finished)")
    df = pd.DataFrame(records)
    df.attrs["not_ok"] = not_ok
    return df


def interpolate_loss(curve, tokens: float) -> float:
    """Loss at `tokens` on a loss-vs-tokens curve, linear in log tokens between evaluations;
    NaN outside the evaluated range."""
    t = np.array([p[0] for p in curve], float)
    y = np.array([p[1] for p in curve], float)
    if len(t) == 0 or tokens < t[0] or tokens > t[-1]:
        return float("nan")
    return float(np.interp(np.log(tokens), np.log(t), y))


def isoflop_points(n_params, curves, budgets):
    """(C, N, L) IsoFLOP points from training curves: a model of N parameters reaches budget C
    after D = C / (6 N) tokens; its loss there is read off its curve. Models whose curve does not
    reach D, or starts after it, are left out of that budget. N decides the FLOP convention."""
    C, N, L = [], [], []
    for n, curve in zip(n_params, curves):
        for c in budgets:
            loss = interpolate_loss(curve, c / (6.0 * n))
            if np.isfinite(loss):
                C.append(float(c))
                N.append(float(n))
                L.append(loss)
    return np.array(C), np.array(N), np.array(L)


def isoflop_from_curves(n_params, curves, budgets, window: int = 2, min_points: int = 3):
    """Approach 2 on curves: isoflop_points, then the parabola vertex per budget (isoflop_minima)."""
    return isoflop_minima(*isoflop_points(n_params, curves, budgets), window=window, min_points=min_points)


def tuned_results(out_root, pid: str, table: str, scale: str, rows=None) -> dict:
    """{row: {metric: {seed: value}}} of a finished table's `rows` (default: all at `scale`), each
    tuned row at the grid point that `repro compare` chooses for it (common.report.compare.apply_tuning,
    the same protocol), so a fit to the table uses exactly the numbers its report shows. Raises
    DataMissing naming the command when one of them has no finished run or a run has not finished."""
    from optrepro.config import run_rows
    from optrepro.registry import get_paper
    from optrepro.report.compare import aggregate, apply_tuning, collect, unfinished
    paper = get_paper(pid)
    spec = paper.load_table(table)
    wanted = list(rows or spec.scales[scale].rows or spec.rows)
    unknown = [r for r in wanted if r not in spec.rows]
    if unknown:
        from optrepro.errors import ConfigError
        raise ConfigError(f"{pid}/{table} has no row(s) {', '.join(unknown)}")
    rows = run_rows(spec, scale, wanted)
    cmd = _run_command(out_root, pid, table, scale) + " --resume"
    results = collect(Path(out_root), pid, table, scale, rows)
    empty = [r for r, rs in results.items() if not rs]
    pending = unfinished(Path(out_root), pid, table, scale, rows)
    if empty or pending:
        what = empty[:3] if empty else pending[:3]
        raise DataMissing(f"{Path(out_root) / pid / table / scale}: {len(empty)} row(s) without runs, "
                          f"{len(pending)} unfinished run(s) ({', '.join(what)} ...); run the table first: {cmd}")
    agg = aggregate(results, list(spec.metrics))
    apply_tuning(spec, agg, scale)
    points = getattr(spec, "tune_parent", {})
    base = [r for r in wanted if r in agg and r not in points]
    return {r: agg[r]["per_seed"] for r in base}
