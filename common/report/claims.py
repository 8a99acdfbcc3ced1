"""Claims: what `repro compare` checks and prints a verdict for.

Each claim has a scale. At `mini` (and `smoke`) scale claims are the paper's qualitative
statement on the small task; at `full` scale `matches_reported` checks our mean against each
reported number within its tolerance. Verdicts: pass | fail | missing (rows not run).

Types (rows are the table's rows; `metric` one of its metrics; direction from the metric):
- better:         mean(a) beats mean(b) by more than `margin` (in the metric's good direction)
- within:         |mean(a) - value| <= tol
- monotone:       mean over `rows` (in order) strictly increasing / decreasing (`direction`)
- ratio:          mean(a) / mean(b) <= value (e.g. memory, time)
- differs:        |mean(a) - mean(b)| > margin (a choice changes the result, either way)
- close:          |mean(a) - mean(b)| <= tol (two implementations or settings agree)
- tighter:        the range (max - min) of the means over `rows` is below the range over `rows_b`
                  minus `margin` (a method is less sensitive to a setting than another)
- gap_increases:  for `pairs` [[a1,b1],[a2,b2],...], the advantage of a_i over b_i at the last
                  pair exceeds the one at the first pair by more than `margin`
- matches_reported (full scale): every reported number of this table within its tolerance
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ClaimSpec, TableSpec

CLAIM_TYPES = ("better", "vs_best", "within", "monotone", "ratio", "differs", "close", "tighter", "gap_increases",
               "matches_reported")

NOISE_SE = 2.0
"""A difference below NOISE_SE standard errors is flagged 'within noise' in the claim's detail
(the verdict itself follows the claim's rule; the flag says how much to trust it)."""


@dataclass
class Verdict:
    id: str
    type: str
    text: str
    verdict: str
    detail: str
    numbers: dict = field(default_factory=dict)


def validate(spec: TableSpec) -> list[str]:
    """Contract problems: claims that name rows, metrics or types that do not exist."""
    errs = []
    for c in spec.claims:
        if c.type not in CLAIM_TYPES:
            errs.append(f"claim {c.id}: type '{c.type}' not in {', '.join(CLAIM_TYPES)}")
            continue
        if c.scale not in spec.scales:
            errs.append(f"claim {c.id}: scale '{c.scale}' unknown")
        if c.type != "matches_reported" and c.metric not in spec.metrics:
            errs.append(f"claim {c.id}: metric '{c.metric}' is not one of the table's metrics")
        names = [c.a, c.b] if c.type in ("better", "ratio", "differs", "close") else [c.a] if c.type == "within" else \
            [c.a, *c.rows] if c.type == "vs_best" else \
            list(c.rows) if c.type == "monotone" else [*c.rows, *c.rows_b] if c.type == "tighter" else \
            [r for p in c.pairs for r in p]
        for r in names:
            if r not in spec.rows:
                errs.append(f"claim {c.id}: row '{r}' does not exist")
        if c.type == "vs_best" and not c.rows:
            errs.append(f"claim {c.id}: vs_best needs the rows to take the best of")
        if c.type == "tighter" and (len(c.rows) < 2 or len(c.rows_b) < 2):
            errs.append(f"claim {c.id}: tighter needs >= 2 rows in both rows and rows_b")
        if c.type == "monotone" and len(c.rows) < 2:
            errs.append(f"claim {c.id}: monotone needs at least 2 rows")
        if c.type == "gap_increases" and (len(c.pairs) < 2 or any(len(p) != 2 for p in c.pairs)):
            errs.append(f"claim {c.id}: gap_increases needs >= 2 pairs [a, b]")
        if not c.text:
            errs.append(f"claim {c.id}: give the paper's claim in words ('text')")
    return errs


def _sign(spec: TableSpec, metric: str) -> float:
    return 1.0 if spec.metrics[metric].higher_is_better else -1.0


def evaluate(spec: TableSpec, scale: str, means: dict, reported: list, spread: dict | None = None) -> list[Verdict]:
    """`means`: {row: {metric: mean}} over seeds with status ok; `spread`: {row: {metric: (std, n)}}, used
    to state how many standard errors a two-row difference is."""
    out = []
    for c in spec.claims:
        if c.scale != scale:
            continue
        v = _one(c, spec, means, reported)
        b = c.b
        if c.type == "vs_best" and v.verdict != "missing":
            b = max(c.rows, key=lambda r: _sign(spec, c.metric) * _get(means, r, c.metric))
        se = _se(spread or {}, c.a, b, c.metric) if c.type in ("better", "differs", "close", "vs_best") else None
        if se and v.verdict != "missing":
            d = abs(_get(means, c.a, c.metric) - _get(means, b, c.metric))
            v.detail += f"; |difference| = {d / se:.1f} SE" + (" (within noise)" if d < NOISE_SE * se else "")
            v.numbers["se"] = se
        out.append(v)
    return out


def _se(spread: dict, row_a: str, row_b: str, metric: str) -> float | None:
    """Standard error of mean(a) - mean(b) from the per-seed spreads (None below 2 seeds a side)."""
    a, b = spread.get(row_a, {}).get(metric), spread.get(row_b, {}).get(metric)
    if not a or not b or a[1] < 2 or b[1] < 2:
        return None
    return (a[0] ** 2 / a[1] + b[0] ** 2 / b[1]) ** 0.5 or None


def _get(means, row, metric):
    return means.get(row, {}).get(metric)


def _fmt(x):
    return f"{x:.4g}"


def _one(c: ClaimSpec, spec: TableSpec, means: dict, reported: list) -> Verdict:
    v = lambda verdict, detail, **nums: Verdict(c.id, c.type, c.text, verdict, detail, nums)
    if c.type == "matches_reported":
        checks, fails, missing = [], 0, 0
        for r in reported:
            ours = _get(means, r.row, r.metric)
            if ours is None:
                missing += 1
                continue
            tol = r.tolerance if r.tolerance is not None else c.tol
            ok = abs(ours - r.value) <= tol
            fails += not ok
            checks.append(f"{r.row}/{r.metric}: ours {_fmt(ours)} vs paper {_fmt(r.value)} (tol {tol:g})")
        if not checks:
            return v("missing", "no reported number has a matching run")
        return v("fail" if fails else "pass", "; ".join(checks) + (f"; {missing} not run" if missing else ""))
    s = _sign(spec, c.metric)
    if c.type == "differs":
        a, b = _get(means, c.a, c.metric), _get(means, c.b, c.metric)
        if a is None or b is None:
            return v("missing", f"needs rows {c.a} and {c.b}")
        d = abs(a - b)
        return v("pass" if d > c.margin else "fail",
                 f"{c.a} {_fmt(a)} vs {c.b} {_fmt(b)}: |difference| {_fmt(d)} (needs > {c.margin:g})", difference=d)
    if c.type == "close":
        a, b = _get(means, c.a, c.metric), _get(means, c.b, c.metric)
        if a is None or b is None:
            return v("missing", f"needs rows {c.a} and {c.b}")
        d = abs(a - b)
        return v("pass" if d <= c.tol else "fail",
                 f"{c.a} {_fmt(a)} vs {c.b} {_fmt(b)}: |difference| {_fmt(d)} (needs <= {c.tol:g})", difference=d)
    if c.type in ("better", "ratio"):
        a, b = _get(means, c.a, c.metric), _get(means, c.b, c.metric)
        if a is None or b is None:
            return v("missing", f"needs rows {c.a} and {c.b}")
        if c.type == "better":
            adv = s * (a - b)
            return v("pass" if adv > c.margin else "fail",
                     f"{c.a} {_fmt(a)} vs {c.b} {_fmt(b)}: advantage {_fmt(adv)} (needs > {c.margin:g})",
                     a=a, b=b, advantage=adv)
        r = a / b if b else float("inf")
        return v("pass" if r <= c.value else "fail", f"{c.a}/{c.b} = {_fmt(r)} (needs <= {c.value:g})", ratio=r)
    if c.type == "vs_best":
        a = _get(means, c.a, c.metric)
        vals = {r: _get(means, r, c.metric) for r in c.rows}
        if a is None or any(x is None for x in vals.values()):
            return v("missing", "needs rows " + ", ".join([c.a, *c.rows]))
        best = max(vals, key=lambda r: s * vals[r])
        adv = s * (a - vals[best])
        return v("pass" if adv > c.margin else "fail",
                 f"{c.a} {_fmt(a)} vs best of {len(vals)} ({best}) {_fmt(vals[best])}: advantage {_fmt(adv)} "
                 f"(needs > {c.margin:g})", a=a, best=vals[best], advantage=adv)
    if c.type == "within":
        a = _get(means, c.a, c.metric)
        if a is None:
            return v("missing", f"needs row {c.a}")
        return v("pass" if abs(a - c.value) <= c.tol else "fail",
                 f"{c.a} {_fmt(a)} vs {c.value:g} ± {c.tol:g}", a=a)
    if c.type == "monotone":
        vals = [_get(means, r, c.metric) for r in c.rows]
        if any(x is None for x in vals):
            return v("missing", "needs rows " + ", ".join(c.rows))
        inc = c.direction == "increasing"
        ok = all((y > x) if inc else (y < x) for x, y in zip(vals, vals[1:]))
        return v("pass" if ok else "fail", " -> ".join(_fmt(x) for x in vals) + f" ({c.direction})",
                 values=vals)
    if c.type == "tighter":
        va, vb = [_get(means, r, c.metric) for r in c.rows], [_get(means, r, c.metric) for r in c.rows_b]
        if any(x is None for x in va + vb):
            return v("missing", "needs rows " + ", ".join([*c.rows, *c.rows_b]))
        ra, rb = max(va) - min(va), max(vb) - min(vb)
        return v("pass" if ra < rb - c.margin else "fail",
                 f"range over {', '.join(c.rows)}: {_fmt(ra)} ({' / '.join(_fmt(x) for x in va)}); over "
                 f"{', '.join(c.rows_b)}: {_fmt(rb)} ({' / '.join(_fmt(x) for x in vb)}) (needs first < second - {c.margin:g})",
                 range_a=ra, range_b=rb)
    if c.type == "gap_increases":
        gaps = []
        for a, b in c.pairs:
            x, y = _get(means, a, c.metric), _get(means, b, c.metric)
            if x is None or y is None:
                return v("missing", f"needs rows {a} and {b}")
            gaps.append(s * (x - y))
        ok = gaps[-1] - gaps[0] > c.margin
        return v("pass" if ok else "fail",
                 "advantage " + " -> ".join(_fmt(g) for g in gaps) + f" (last - first needs > {c.margin:g})",
                 gaps=gaps)
    return v("missing", f"unknown claim type {c.type}")
