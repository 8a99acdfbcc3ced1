"""`repro compare`: aggregate seeds, put the paper's numbers beside ours, check claims, and write
reports/<pid>/<table>.{md,json,png}. `repro report` rebuilds reports/README.md from the JSONs."""
from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from pathlib import Path

from optrepro import ROOT
from optrepro.io import atomic_write_json, atomic_write_text
from optrepro.report import claims as claims_mod
from optrepro.report.figure import figure
from optrepro.report.reported import for_table
from optrepro.track import read_jsonl

MARK = {"reported": "", "third_party": "†", "unverified": "‡"}
ICON = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "missing": "MISSING"}


def collect(out: Path, pid: str, table: str, scale: str, rows: list[str], variant: str = "") -> dict:
    """{row: [result dicts]} from <out>/<pid>/<table>/<scale>/<row><variant>/seed*/result.json
    (`variant`: '' or '@<hash>' of the runs' command-line overrides, common.overrides)."""
    res = {}
    for row in rows:
        d = Path(out) / pid / table / scale / (row + variant)
        res[row] = [json.loads(p.read_text()) for p in sorted(d.glob("seed*/result.json"))]
    return res


def unfinished(out: Path, pid: str, table: str, scale: str, rows: list[str], variant: str = "") -> list[str]:
    """`row/seedN` of the runs that started (config.yaml) but left no result.json: still running, or
    killed before they could write one."""
    res = []
    for row in rows:
        d = Path(out) / pid / table / scale / (row + variant)
        res += [f"{row}/{p.parent.name}" for p in sorted(d.glob("seed*/config.yaml"))
                if not (p.parent / "result.json").exists()]
    return res


def aggregate(results: dict, metrics: list[str]) -> dict:
    """{row: {status, seeds, metrics: {metric: {mean, std, n}}, per_seed: {metric: {seed: value}}}} over
    seeds with status ok. `per_seed` keeps every number a verdict is computed from."""
    agg = {}
    for row, rs in results.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        names = sorted({k for r in ok for k, x in r.get("metrics", {}).items() if _number(x)})
        agg[row] = {"status": {s: sum(r.get("status") == s for r in rs)
                               for s in sorted({r.get("status") for r in rs})},
                    "seeds": [r["seed"] for r in ok], "metrics": {},
                    "per_seed": {m: {str(r["seed"]): float(r["metrics"][m]) for r in ok
                                     if _number(r.get("metrics", {}).get(m))} for m in names}}
        _summarize(agg[row], metrics)
    return agg


def apply_tuning(spec, agg: dict, scale: str) -> None:
    """The tuned rows of `spec` at `scale`, each the grid point with the best mean selection metric
    over seeds (points with a failed or diverged seed are not eligible), in place in `agg`."""
    listed = set(spec.scales[scale].rows or spec.rows)
    order = sorted(spec.tune, key=lambda r: bool(spec.tune[r].select_from))  # choosers first
    chosen = {}
    for r in order:
        if r not in listed:
            continue
        ts = spec.tune[r]
        maximize = ts.maximize if ts.maximize is not None else (
            spec.metrics[ts.select].higher_is_better if ts.select in spec.metrics else True)
        by_point = {}
        for name, pname in ts.points.items():
            a = agg.get(name)
            vals = list(seed_values(a, ts.select).values()) if a else []
            bad = a is None or any(k != "ok" for k in a.get("status", {})) or not vals
            by_point[pname] = None if bad else statistics.fmean(vals)
        if ts.select_from:
            pick = chosen.get(ts.select_from)
        else:
            ok = {p: v for p, v in by_point.items() if v is not None}
            pick = (max if maximize else min)(ok, key=ok.get) if ok else None
        chosen[r] = pick
        if pick is None:
            agg.pop(r, None)
            continue
        agg[r] = copy.deepcopy(agg[f"{r}@{pick}"])
        agg[r]["tuned"] = {"select": ts.select, "maximize": maximize, "chosen": pick,
                           "by_point": by_point, "from": ts.select_from or r}


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _summarize(a: dict, metrics: list[str]) -> None:
    a["metrics"] = {}
    for m in metrics:
        vals = list(a["per_seed"].get(m, {}).values())
        if vals:
            a["metrics"][m] = {"mean": statistics.fmean(vals),
                               "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def seed_values(agg_row: dict, metric: str) -> dict:
    """{seed: value} of one row of a report JSON. Reports written before values were keyed by seed
    stored a list in the order of `seeds`."""
    vals = (agg_row.get("per_seed") or {}).get(metric)
    if not vals:
        return {}
    if isinstance(vals, dict):
        return {int(k): float(x) for k, x in vals.items()}
    if len(vals) != len(agg_row["seeds"]):
        raise ValueError(f"{len(vals)} values of {metric} for {len(agg_row['seeds'])} seeds: cannot pair them")
    return {int(k): float(x) for k, x in zip(agg_row["seeds"], vals)}


def samples(doc: dict) -> dict:
    """{row: {metric: {seed: value}}}: the per-seed values a report JSON stores."""
    return {row: {m: seed_values(a, m) for m in (a.get("per_seed") or {})} for row, a in doc["rows"].items()}


def config_hash(paper, table: str, scale: str, _seen=None) -> str:
    """sha256 (16 hex) of what a table's runs at `scale` depend on in its config: the experiment, base,
    the rows run at this scale with their values, the seeds and the scale block (and the same for the
    tables it `needs`). Claims, notes, labels and plots are left out: changing them needs a recheck,
    not a rerun."""
    return spec_hash(paper.load_table(table), scale,
                     {n: config_hash(paper, n, scale) for n in paper.load_table(table).needs})


def spec_hash(spec, scale: str, needs: dict | None = None) -> str:
    """config_hash of a parsed table spec (`needs`: the hashes of the tables it needs)."""
    import hashlib
    import dataclasses
    from optrepro.config import run_rows
    sc = spec.scales[scale]
    rows = run_rows(spec, scale)
    payload = {"experiment": spec.experiment, "config": spec.config, "base": spec.base,
               "rows": {r: spec.rows[r] for r in rows}, "seeds": list(sc.seeds or spec.seeds),
               "scale": {k: v for k, v in dataclasses.asdict(sc).items() if k not in ("rows", "seeds", "grid")},
               "needs": needs or {}}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def tree_dirty() -> list[str]:
    """Tracked files with uncommitted changes, outside generated output (reports/, the paper READMEs'
    results blocks). [] for a clean tree; ['<no git>'] when git cannot tell."""
    from optrepro.meta import dirty_paths
    paths = dirty_paths()
    return ["<no git>"] if paths is None else paths


def destination(paper, table: str, scale: str, out: Path, reports_dir: Path | None,
                overrides: dict | None = None) -> tuple[Path, str]:
    """Where `repro compare` writes a report, and why when it is not the committed reports/.
    reports/ holds one report per table at the scale it reproduces: mini or full runs with no
    overrides. A smoke compare, one with overrides, or a mini compare of a table whose committed
    report is full goes to <out>/reports/ instead (an explicit --reports DIR always wins)."""
    from optrepro import IS_CHECKOUT
    if reports_dir is not None:
        return Path(reports_dir), ""
    why = ""
    if not IS_CHECKOUT:
        why = "an installed copy has no reports/ (that is the repository's)"
    elif overrides:
        why = "runs with overrides are not the table's reproduction"
    elif scale == "smoke":
        why = "smoke runs check that the code runs, they reproduce nothing"
    else:
        j = ROOT / "reports" / paper.pid / f"{table}.json"
        old = json.loads(j.read_text()).get("scale") if j.exists() else None
        if old == "full" and scale != "full":
            why = f"the committed report is at full scale, a {scale} one does not replace it"
    return (Path(out) / "reports", why) if why else (ROOT / "reports", "")


def compare(paper, table: str, scale: str = "mini", out: Path = Path("runs"),
            reports_dir: Path | None = None, allow_dirty: bool = False, overrides: dict | None = None) -> dict:
    """Aggregate the runs, check the claims and write the report into `reports_dir` (default: the
    committed reports/, see `destination`). Into reports/ only from runs made on a clean commit and a
    clean tree (`allow_dirty` overrides that for local use, and the report says so). `overrides`:
    compare the runs made with these command-line overrides (their `<row>@<hash>` directories)."""
    from optrepro import overrides as ov
    from optrepro.errors import UsageError
    spec = paper.load_table(table)
    committed = reports_dir is None or Path(reports_dir).resolve() == (ROOT / "reports").resolve()
    reports_dir = Path(reports_dir or ROOT / "reports")
    from optrepro.config import run_rows
    variant = ov.variant(overrides or {})
    results = collect(out, paper.pid, table, scale, run_rows(spec, scale), variant)
    if not any(results.values()):
        what = f" with overrides {ov.describe(overrides)} (<row>{variant}/)" if variant else ""
        raise UsageError(f"no results for {paper.pid}/{table} at scale {scale}{what} under {out}/; "
                         f"run `repro run {paper.pid} {table} --scale {scale}"
                         f"{' ' + ov.describe(overrides) if variant else ''}` first")
    pending = unfinished(out, paper.pid, table, scale, run_rows(spec, scale), variant)
    if pending:
        listed = ", ".join(pending[:3]) + (" ..." if len(pending) > 3 else "")
        msg = (f"{len(pending)} run(s) of {paper.pid}/{table} have not finished ({listed}): still running, or "
               f"killed (`repro run {paper.pid} {table} --scale {scale} --resume` completes them)")
        if committed and not allow_dirty:
            raise UsageError(f"refusing to write {paper.pid}/{table} into reports/: {msg}")
        print(f"repro compare: warning: {msg}; this report leaves them out", file=sys.stderr)
    metas = [r["meta"] for rs in results.values() for r in rs if "meta" in r]
    shas = sorted({m["git_sha"] for m in metas})
    dirty_runs = [x for x in shas if x.endswith("-dirty") or x == "unknown"]
    dirty_tree = tree_dirty()
    if committed and not allow_dirty and (dirty_runs or dirty_tree):
        why = (f"the runs were made from uncommitted code ({', '.join(dirty_runs)})" if dirty_runs else
               f"the tree has uncommitted changes ({', '.join(dirty_tree[:3])}{' ...' if len(dirty_tree) > 3 else ''})")
        raise UsageError(f"refusing to write {paper.pid}/{table} into reports/: {why}. Commit, rerun and "
                         f"compare again, or pass --reports DIR for a local report (--allow-dirty forces it)")
    agg = aggregate(results, list(spec.metrics))
    apply_tuning(spec, agg, scale)
    doc = {
        "pid": paper.pid, "table": table, "title": paper.title, "caption": paper.caption(table),
        "scale": scale, "generated": time.strftime("%Y-%m-%d"),
        "hardware": metas[0]["hardware"] if metas else "unknown",
        "machines": sorted({m["hardware"] for m in metas}),
        "git_sha": shas,
        "clean": not dirty_runs and not dirty_tree,
        "config_hash": config_hash(paper, table, scale),
        "wall_time_s": round(sum(m.get("wall_time_s", 0) for m in metas), 1),
        "rows": agg,
        "metrics": {m: {"higher_is_better": s.higher_is_better, "label": s.label or m} for m, s in spec.metrics.items()},
        "reported": [r.__dict__ for r in for_table(paper.dir / "reported.csv", table)],
    }
    if variant:
        doc.update(variant=variant, overrides=ov.flat(overrides))
    doc["claims"] = verdicts(paper, spec, doc)
    dest = reports_dir / paper.pid
    png = dest / f"{table}.png"
    _figure(doc, spec, results, out, paper.pid, table, scale, png)
    extra = getattr(paper.experiment, "report_extra", None)
    lines = []
    import inspect
    if extra and variant and "runs" in inspect.signature(extra).parameters:
        lines = ["(This table's analysis of the run logs is drawn for runs without overrides only.)", ""]
    elif extra:
        kw = {"runs": Path(out) / paper.pid / table / scale} if "runs" in inspect.signature(extra).parameters else {}
        lines = extra(doc, dest / f"{table}_profiles.png", **kw)
    doc["extra"] = lines
    atomic_write_json(dest / f"{table}.json", doc)
    atomic_write_text(dest / f"{table}.md", markdown(doc, spec))
    return doc


def verdicts(paper, spec, doc: dict) -> list[dict]:
    """Today's claim verdicts for a report's stored per-seed values."""
    from optrepro.report.reported import Reported
    reported = [Reported(**r) for r in doc.get("reported", [])]
    return [v.__dict__ for v in claims_mod.evaluate(spec, doc["scale"], samples(doc), reported)]


def recheck(paper, table: str, reports_dir: Path | None = None, write: bool = True) -> list[str]:
    """Re-verdict a committed report from its stored per-seed values under today's claims and rules,
    without rerunning. Also refreshes the paper's numbers from reported.csv. Returns what changed."""
    reports_dir = Path(reports_dir or ROOT / "reports")
    j = reports_dir / paper.pid / f"{table}.json"
    if not j.exists():
        return []
    doc = json.loads(j.read_text())
    if any("per_seed" not in a for a in doc["rows"].values()):
        return [f"{paper.pid}/{table}: cannot recheck, the report stores no per-seed values "
                f"(rerun `repro run {paper.pid} {table} --scale {doc['scale']}` and compare)"]
    spec = paper.load_table(table)
    old = {c["id"]: c for c in doc.get("claims", [])}
    doc["reported"] = [r.__dict__ for r in for_table(paper.dir / "reported.csv", table)]
    for a in doc["rows"].values():  # per-seed values keyed by seed
        a["per_seed"] = {m: {str(k): x for k, x in seed_values(a, m).items()} for m in a["per_seed"]}
        _summarize(a, list(spec.metrics))
    apply_tuning(spec, doc["rows"], doc["scale"])
    doc["claims"] = verdicts(paper, spec, doc)
    doc.setdefault("machines", [doc.get("hardware", "unknown")])
    doc.setdefault("clean", not any(x.endswith("-dirty") for x in doc.get("git_sha", [])))
    new = {c["id"]: c for c in doc["claims"]}
    changes = [f"{paper.pid}/{table} {k}: {old[k]['verdict'] if k in old else 'absent'} -> "
               f"{new[k]['verdict'] if k in new else 'removed'}"
               for k in sorted(set(old) | set(new))
               if (old.get(k) or {}).get("verdict") != (new.get(k) or {}).get("verdict")
               or bool((old.get(k) or {}).get("saturated")) != bool((new.get(k) or {}).get("saturated"))]
    text = markdown(doc, spec)
    before_md = (j.with_suffix(".md").read_text() if j.with_suffix(".md").exists() else "")
    before_json = j.read_text()
    after_json = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if (after_json != before_json or text != before_md) and not changes:
        changes = [f"{paper.pid}/{table}: report text refreshed (verdicts unchanged)"]
    if write and changes:
        atomic_write_json(j, doc)
        atomic_write_text(j.with_suffix(".md"), text)
    return changes


def _cell(text: str) -> str:
    """Markdown table cell: pipes in labels (|x|+|y|) must not split columns."""
    return str(text).replace("|", "\\|")


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.3e}"


def verdict_label(c: dict) -> str:
    return ICON[c["verdict"]] + (" (saturated)" if c.get("saturated") else "")


def markdown(doc: dict, spec) -> str:
    from optrepro import overrides as ov
    clean = doc.get("clean")
    code = ", ".join(doc["git_sha"]) + ("" if clean else
                                         " (**not a clean commit**: the runs or the tree had uncommitted changes)")
    machines = doc.get("machines") or [doc["hardware"]]
    L = [f"# {doc['pid']} / {doc['table']}: {doc['caption'] or spec.title}", "",
         f"*{doc['title']}*", "",
         f"Generated by `repro compare {doc['pid']} {doc['table']} --scale {doc['scale']}"
         + (" " + ov.describe(doc["overrides"]) if doc.get("overrides") else "") + "` — do not edit by hand.", "", f"- scale: **{doc['scale']}**"]
    if doc.get("overrides"):
        L += [f"- overrides: `{ov.describe(doc['overrides'])}` "
              f"(runs `<row>{doc['variant']}/`): not the table's reproduction"]
    L += [
         f"- hardware: {'; '.join(machines)}" + (" (runs from more than one machine)" if len(machines) > 1 else ""),
         f"- code: {code}", f"- config hash: `{doc.get('config_hash', 'not recorded')}`",
         f"- total run time: {doc['wall_time_s']} s",
         f"- claims: {claims_mod.summary(doc['claims'])}" if doc["claims"] else "- claims: none at this scale", ""]
    if spec.notes:
        L += [spec.notes.strip(), ""]
    metrics, rows = _order(doc, spec)
    L += ["## Results (mean ± std over seeds)", ""]
    head = ["row", "seeds"]
    for m in metrics:
        arrow = "↑" if doc["metrics"][m]["higher_is_better"] else "↓"
        head.append(f"{_cell(doc['metrics'][m]['label'])} {arrow}")
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, a in rows:
        st = ", ".join(f"{k} {v}" for k, v in a["status"].items() if k != "ok")
        cells = [f"`{row}`", f"{len(a['seeds'])}" + (f" ({st})" if st else "")]
        for m in metrics:
            v = a["metrics"].get(m)
            cells.append(f"{_fmt(v['mean'])} ± {_fmt(v['std'])}" if v else "—")
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L += _tuning(doc, spec)
    if doc["reported"]:
        L += ["## The paper's numbers", "",
              "| row | column | metric | paper | ours (this scale) | kind | source |", "|---|---|---|---|---|---|---|"]
        for r in doc["reported"]:
            ours_s = _ours_cell(doc["rows"].get(r["row"]), r["metric"])
            std = f" ± {r['std']:g}" if r.get("std") is not None else ""
            L.append(f"| `{r['row']}` | {_cell(r['column'])} | {r['metric']} | {r['value']:g}{std}{MARK[r['kind']]} | "
                     f"{ours_s} | {r['kind']} | {r['source']} |")
        L += ["", "† third party (official repository, not the paper's text). ‡ unverified: from memory, "
              "not yet checked against the paper.", ""]
        if doc["scale"] != "full":
            L += [f"At {doc['scale']} scale the task is smaller than the paper's: compare the claims below, "
                  "not the absolute numbers.", ""]
    L += doc.get("extra") or []
    L += ["## Claims", ""]
    if not doc["claims"]:
        L += [f"No claim is checked at {doc['scale']} scale.", ""]
    else:
        L += [f"Verdicts: PASS / FAIL only when the claim's statistic clears its threshold by "
              f"{claims_mod.NOISE_SE:g} standard errors over seeds (paired by seed where rows share seeds, else "
              "Welch); INCONCLUSIVE within noise. `close`, `comparable` and `within` are equivalence tests on "
              "that interval.", ""]
    for c in doc["claims"]:
        L.append(f"- **{verdict_label(c)}** `{c['id']}` ({c['type']}): {c['text']}  \n  {c['detail']}")
    L += ["", f"![{doc['table']}]({doc['table']}.png)", ""]
    L += _per_seed(doc, spec)
    return "\n".join(L)


def _tuning(doc: dict, spec) -> list[str]:
    tuned = {r: a["tuned"] for r, a in _order(doc, spec)[1] if a.get("tuned")}
    if not tuned:
        return []
    L = ["## Tuning", "", "Tuned rows are their grid point with the best mean selection metric over seeds "
         "(validation data, never the test set); a point with a failed or diverged seed is not eligible.", "",
         "| row | selected on | grid (mean of the selection metric) | chosen |", "|---|---|---|---|"]
    for r, t in tuned.items():
        pts = ", ".join(f"{p}: {'—' if v is None else _fmt(v)}" for p, v in t["by_point"].items())
        how = t["select"] + (" ↑" if t["maximize"] else " ↓") + ("" if t["from"] == r else f" (the point {t['from']} chose)")
        names = list(t["by_point"])
        edge = " (at the grid's edge: the best value may lie beyond it)" if len(names) > 2 and \
            t["chosen"] in (names[0], names[-1]) else ""
        L.append(f"| `{r}` | {how} | {pts} | `{t['chosen']}`{edge} |")
    return L + [""]


def _order(doc: dict, spec) -> tuple[list, list]:
    """Metrics and (row, aggregate) pairs in the table config's order (a report JSON is stored with
    sorted keys; the markdown must not depend on whether it was just computed or read back)."""
    metrics = [m for m in spec.metrics if m in doc["metrics"]] + [m for m in doc["metrics"] if m not in spec.metrics]
    names = [r for r in spec.rows if r in doc["rows"]] + [r for r in doc["rows"] if r not in spec.rows]
    return metrics, [(r, doc["rows"][r]) for r in names]


def _per_seed(doc: dict, spec) -> list[str]:
    """The numbers every verdict is computed from: one line per row and metric."""
    metrics, rows = _order(doc, spec)
    L = ["## Per-seed values", "", "| row | metric | " + " | ".join(["values by seed"]) + " |", "|---|---|---|"]
    for row, a in rows:
        for m in metrics:
            vals = seed_values(a, m)
            if vals:
                L.append(f"| `{row}` | {m} | " + ", ".join(f"{k}: {_fmt(x)}" for k, x in vals.items()) + " |")
    return L + [""]


def zoomed_limits(values: list[float], pad: float = 0.15):
    """y-limits around `values` (means ± std) when they sit far from 0 (all on one side of it, their
    spread under half their distance to it), so gaps between rows show; else None (start at 0)."""
    vals = [v for v in values if isinstance(v, (int, float)) and v == v]
    if len(vals) < 2:
        return None
    lo, hi = min(vals), max(vals)
    if lo <= 0 <= hi or hi - lo == 0:
        return None
    near = min(abs(lo), abs(hi))
    if hi - lo > 0.5 * near:
        return None
    m = pad * (hi - lo)
    return lo - m, hi + m


def _figure(doc, spec, results, out, pid, table, scale, png: Path) -> None:
    p = spec.plot
    metric = p.metric or next(iter(spec.metrics))
    with figure(png) as (fig, ax):
        _draw(ax, doc, spec, results, out, pid, table, scale, p, metric)


def _ours_cell(row: dict | None, metric: str) -> str:
    """Our value beside a paper's number: mean ± std, or why there is none (a row whose every seed
    diverged was run: saying "not run" would hide that)."""
    ours = (row or {}).get("metrics", {}).get(metric)
    if ours:
        return f"{_fmt(ours['mean'])} ± {_fmt(ours['std'])}"
    if row is None:
        return "not run at this scale"
    bad = ", ".join(f"{k} {v}" for k, v in row.get("status", {}).items() if k != "ok")
    return f"none: {bad} of {sum(row.get('status', {}).values())} seeds" if bad else "not measured by this row"


def _draw(ax, doc, spec, results, out, pid, table, scale, p, metric) -> None:
    import matplotlib
    if p.kind == "curve":
        points = getattr(spec, "tune_parent", {}) or {}
        series = [metric] + [m for m in p.also if m != metric]
        n_rows = sum(1 for row in doc["rows"] if row not in points)
        palette = [f"C{i}" for i in range(10)] if n_rows <= 10 else [matplotlib.colormaps["tab20"](i) for i in range(20)]
        drawn = 0
        for row in doc["rows"]:
            if row in points:  # a grid point: its tuned row draws the chosen one
                continue
            color = palette[drawn % len(palette)]  # one colour a row (up to 20 distinct); series differ by line style
            drawn += 1
            tuned = doc["rows"][row].get("tuned")
            src = f"{row}@{tuned['chosen']}" if tuned else row
            recs = [read_jsonl(Path(out) / pid / table / scale / (src + doc.get("variant", ""))
                               / f"seed{r['seed']}" / "metrics.jsonl")
                    for r in results.get(src, []) if r.get("status") == "ok"]
            label = f"{row} ({tuned['chosen']})" if tuned else row
            for k, m in enumerate(series):
                curves = [{int(x[p.x]): float(x[m]) for x in rs if m in x and p.x in x
                           and isinstance(x[m], (int, float))} for rs in recs]
                if not curves:
                    continue
                xs = sorted(set.intersection(*(set(c) for c in curves)))
                xs = [x for x in xs if all(c[x] == c[x] for c in curves)]  # a diverged point is not drawn
                if not xs:
                    continue
                mean = [statistics.fmean(c[x] for c in curves) for x in xs]
                name = label if len(series) == 1 else f"{label}: {spec.metrics[m].label if m in spec.metrics else m}"
                line, = ax.plot(xs, mean, label=name, linestyle=("-", "--", ":", "-.")[k % 4], color=color,
                                marker="o" if len(xs) < 20 else None, markersize=3)
                if len(curves) > 1:
                    sd = [statistics.stdev(c[x] for c in curves) for x in xs]
                    ax.fill_between(xs, [a - b for a, b in zip(mean, sd)], [a + b for a, b in zip(mean, sd)],
                                    alpha=0.2, color=line.get_color())
        ax.set_xlabel(p.xlabel or p.x)
        if len(ax.get_lines()) > 6:  # many rows: the legend goes beside the axes, not over the curves
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        else:
            ax.legend(fontsize=8)
    else:
        points = getattr(spec, "tune_parent", {}) or {}
        rows = [r for r in doc["rows"] if metric in doc["rows"][r]["metrics"] and r not in points]
        means = [doc["rows"][r]["metrics"][metric]["mean"] for r in rows]
        sds = [doc["rows"][r]["metrics"][metric]["std"] for r in rows]
        colors = [f"C{i % 10}" for i in range(len(rows))]
        ax.bar(range(len(rows)), means, yerr=sds, capsize=4, color=colors, edgecolor="black", linewidth=0.5)
        seed_vals = [list((doc["rows"][r].get("per_seed", {}).get(metric) or {}).values()) for r in rows]
        for i, vals in enumerate(seed_vals):  # every seed as a dot: a bimodal row is not its mean +- std
            ax.scatter([i] * len(vals), vals, s=9, color="black", alpha=0.6, zorder=3, linewidths=0)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(rows, rotation=30, ha="right", fontsize=8)
        rep = [(rows.index(r["row"]), r["value"]) for r in doc["reported"] if r["row"] in rows and r["metric"] == metric]
        shown = [m + d for m, d in zip(means, sds)] + [m - d for m, d in zip(means, sds)]
        shown += [v for vals in seed_vals for v in vals]
        if rep and scale == "full":
            ax.scatter([i for i, _ in rep], [v for _, v in rep], color="red", marker="D", zorder=3, label="paper")
            ax.legend(fontsize=8)
            shown += [v for _, v in rep]
        lim = zoomed_limits(shown)
        if lim and not p.logy:
            ax.set_ylim(*lim)
            ax.annotate("axis zoomed: does not start at 0", (0.01, 0.99), xycoords="axes fraction",
                        va="top", fontsize=7, color="gray")
    if p.logy:
        ax.set_yscale("log")
    if p.logx and p.kind == "curve":
        ax.set_xscale("log")
    ax.set_ylabel(p.ylabel or (spec.metrics[metric].label or metric if metric in spec.metrics else metric))
    ax.set_title(f"{pid} / {table} ({scale}, n={max((len(a['seeds']) for a in doc['rows'].values()), default=0)} seeds"
                 f"{', bars: mean ± std, dots: seeds' if p.kind != 'curve' else ', mean ± std'})", fontsize=10)


START, END = "<!-- results:start -->", "<!-- results:end -->"


def redraw_bar_figure(paper, table: str, reports_dir: Path | None = None) -> Path | None:
    """Redraw a bar-kind table's committed figure from its report JSON (a bar figure shows only the
    stored means and stds, so it is a function of the JSON: `repro report` keeps it in today's style).
    None for curve figures (they need the runs' logs) and tables without a report."""
    reports_dir = Path(reports_dir or ROOT / "reports")
    j = reports_dir / paper.pid / f"{table}.json"
    spec = paper.load_table(table)
    if spec.plot.kind == "curve" or not j.exists():
        return None
    doc = json.loads(j.read_text())
    # the JSON's rows are sorted by name; `repro compare` draws them in the config's order
    order = {name: i for i, name in enumerate(spec.rows)}
    doc["rows"] = dict(sorted(doc["rows"].items(), key=lambda kv: order.get(kv[0].split("@")[0], len(order))))
    png = j.with_suffix(".png")
    _figure(doc, spec, {}, None, paper.pid, table, doc["scale"], png)
    return png


def update_paper_readme(paper, reports_dir: Path | None = None) -> bool:
    """Rewrite the generated block of papers/<pid>/README.md from the paper's report JSONs."""
    reports_dir = Path(reports_dir or ROOT / "reports")
    readme = paper.dir / "README.md"
    if not readme.exists():
        return False
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    L = [START, "", "| table | scale | claims | report |", "|---|---|---|---|"]
    for t in paper.tables:
        j = reports_dir / paper.pid / f"{t}.json"
        if not j.exists():
            L.append(f"| {t} | — | not run yet | — |")
            continue
        doc = json.loads(j.read_text())
        cs = "<br>".join(f"{verdict_label(c)} {c['id']}: {c['detail']}" for c in doc["claims"]) or "none at this scale"
        L.append(f"| {t} | {doc['scale']} | {cs} | [reports/{paper.pid}/{t}.md](../../reports/{paper.pid}/{t}.md) |")
    L += ["", END]
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    atomic_write_text(readme, head + "\n".join(L) + tail)
    return True


def index(reports_dir: Path | None = None, write: bool = True) -> str:
    """reports/README.md: every committed table report with its scale and claim verdicts."""
    from optrepro.registry import all_papers
    reports_dir = Path(reports_dir or ROOT / "reports")
    L = ["# Reports", "", "Generated by `repro report` from reports/<pid>/<table>.json — do not edit by hand.", "",
         f"A claim passes or fails only beyond {claims_mod.NOISE_SE:g} standard errors over seeds; within noise it "
         "is inconclusive. `(saturated)`: every compared row is at the metric's ceiling.", "",
         "| paper | table | scale | claims | report |", "|---|---|---|---|---|"]
    for pid, paper in all_papers().items():
        for table in paper.tables:
            j = reports_dir / pid / f"{table}.json"
            if not j.exists():
                L.append(f"| {pid} | {table} | — | not run yet | — |")
                continue
            doc = json.loads(j.read_text())
            cs = doc.get("claims", [])
            flag = "" if doc.get("clean") else "<br>(runs not from a clean commit)"
            verdict = claims_mod.summary(cs) + "".join(f"<br>{verdict_label(c)} {c['id']}" for c in cs) + flag \
                if cs else "no claims at this scale" + flag
            L.append(f"| {pid} | {table} | {doc['scale']} | {verdict} | [{table}.md]({pid}/{table}.md) |")
    text = "\n".join(L) + "\n"
    if write:
        atomic_write_text(reports_dir / "README.md", text)
    return text
