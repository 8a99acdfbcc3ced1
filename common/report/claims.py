"""Claims: what `repro compare` checks and prints a verdict for, with the seeds' noise taken into account.

Every verdict is one of
- pass:          the claim holds beyond noise (its statistic clears the threshold by >= 2 standard errors);
- fail:          the other way beyond noise;
- inconclusive:  within noise (or the noise is unknown: one seed on a table that is not deterministic);
- missing:       a row the claim needs was not run.
A claim whose compared rows are all past their metric's `saturated` level is flagged `saturated`: the
metric is at its ceiling there and the verdict says little about the methods.

Statistics. Each claim reduces to a linear contrast of row means, T = Σ c_r mean_r (e.g. a - b). Its
standard error is paired by seed when every row in the contrast ran the same seeds (the per-seed contrast's
std / √n), otherwise Welch's √(Σ c_r² s_r² / n_r). NOISE_SE = 2 (about a 95% two-sided interval).
A table marked `deterministic` (closed forms, fits to fixed data) has no seed noise: one seed is enough.

Types (rows are the table's rows; `metric` one of its metrics; `adv` = the difference in the metric's
good direction):
- better:         adv(a, b) > margin                                  (one-sided)
- vs_best:        adv(a, best of `rows`) > margin                    (one-sided)
- comparable:     adv(a, b) >= -tol: a is not worse than b by more than tol (non-inferiority: pass when
                  the interval's lower end is above -tol; a far better than b passes and is said so)
- close:          |a - b| <= tol: two implementations or settings agree (equivalence: pass only when the
                  whole interval lies inside ±tol; outside it, the detail says which side is better)
- within:         |mean(a) - value| <= tol                            (equivalence)
- differs:        |a - b| > margin (a choice changes the result, either way; fails only when the whole
                  interval lies inside ±margin)
- ratio:          mean(a) / mean(b) <= value, tested as value·b - a >= 0 (positive b)
- monotone:       every consecutive step over `rows` in `direction`, each beyond noise
- tighter:        range of the means over `rows` < range over `rows_b` - margin
- gap_increases:  for `pairs` [[a1,b1],...], adv(a_last, b_last) - adv(a_1, b_1) > margin
- in_interval:    `value` lies inside row a's own uncertainty interval [mean(lo), mean(hi)] (metrics
                  `lo`, `hi`: e.g. a fitted exponent's bootstrap 5-95%, whose width, not the seeds'
                  spread, is the fit's noise); fail outside; inside, pass only if the interval's
                  half-width is at most `tol` (when tol > 0), else inconclusive: a wide interval
                  contains the value without confirming it
- matches_reported (full scale): every reported number of this table within its tolerance (equivalence)
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from optrepro.config import ClaimSpec, TableSpec

CLAIM_TYPES = ("better", "vs_best", "comparable", "within", "bound", "monotone", "ratio", "differs", "close",
               "tighter", "gap_increases", "in_interval", "matches_reported")
VERDICTS = ("pass", "fail", "inconclusive", "missing")

NOISE_SE = 2.0
"""A claim's statistic must clear its threshold by NOISE_SE standard errors to pass (or fall short by as
many to fail); in between it is inconclusive."""


@dataclass
class Verdict:
    id: str
    type: str
    text: str
    verdict: str
    detail: str
    numbers: dict = field(default_factory=dict)
    saturated: bool = False


Samples = dict
"""{row: {metric: {seed: value}}}: the per-seed values of the runs that finished ok."""


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
        for r in claim_rows(c):
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
        if c.type == "bound" and c.direction not in ("above", "below"):
            errs.append(f"claim {c.id}: bound needs direction above or below, got '{c.direction}'")
        if c.type == "in_interval" and not (c.lo in spec.metrics and c.hi in spec.metrics):
            errs.append(f"claim {c.id}: in_interval needs `lo` and `hi`, metrics of the table")
        if c.type in ("close", "comparable", "within") and c.tol < 0:
            errs.append(f"claim {c.id}: tol must be >= 0")
        if not c.text:
            errs.append(f"claim {c.id}: give the paper's claim in words ('text')")
        budgets = {r: len(spec.tune[r].points) for r in claim_rows(c) if r in (spec.tune or {})}
        if len(set(budgets.values())) > 1:
            errs.append(f"claim {c.id}: compared rows get unequal tuning budgets "
                        f"({', '.join(f'{r}: {n}' for r, n in budgets.items())} grid points)")
    for r, ts in (spec.tune or {}).items():
        if ts.select in spec.metrics and "test" in ts.select:
            errs.append(f"tune.{r}: selects on '{ts.select}', a test metric; select on validation data")
    return errs


def claim_rows(c: ClaimSpec) -> list[str]:
    """The rows a claim compares."""
    if c.type in ("better", "ratio", "differs", "close", "comparable"):
        return [c.a, c.b]
    if c.type in ("within", "bound", "in_interval"):
        return [c.a]
    if c.type == "vs_best":
        return [c.a, *c.rows]
    if c.type == "monotone":
        return list(c.rows)
    if c.type == "tighter":
        return [*c.rows, *c.rows_b]
    if c.type == "gap_increases":
        return [r for p in c.pairs for r in p]
    return []


# ---------------------------------------------------------------- statistics

@dataclass
class Estimate:
    value: float
    se: float | None
    """None: the noise is unknown (a row with one seed on a table that is not deterministic)."""
    how: str


def mean(samples: Samples, row: str, metric: str) -> float | None:
    vals = samples.get(row, {}).get(metric, {})
    return statistics.fmean(vals.values()) if vals else None


def contrast(samples: Samples, coefs: dict, metric: str, deterministic: bool = False) -> Estimate | None:
    """T = Σ c_r mean_r with its standard error (paired by seed where every row shares its seeds)."""
    coefs = {r: c for r, c in coefs.items() if c != 0}
    per = {r: samples.get(r, {}).get(metric, {}) for r in coefs}
    if any(not v for v in per.values()):
        return None
    value = sum(c * statistics.fmean(per[r].values()) for r, c in coefs.items())
    seed_sets = {frozenset(v) for v in per.values()}
    if len(seed_sets) == 1 and len(next(iter(seed_sets))) >= 2:
        seeds = sorted(next(iter(seed_sets)))
        d = [sum(c * per[r][s] for r, c in coefs.items()) for s in seeds]
        se = statistics.stdev(d) / math.sqrt(len(d))
        scale = max(1.0, *(abs(x) for x in d))
        return Estimate(value, se if se > 1e-12 * scale else 0.0, f"paired over {len(d)} seeds")
    if all(len(v) >= 2 for v in per.values()):
        se = math.sqrt(sum(c * c * statistics.variance(per[r].values()) / len(per[r]) for r, c in coefs.items()))
        return Estimate(value, se, "Welch")
    if deterministic:
        return Estimate(value, 0.0, "deterministic")
    return Estimate(value, None, "one seed: noise unknown")


def one_sided(g: float, se: float | None) -> str:
    """The claim is g > 0."""
    if se is None:
        return "inconclusive"
    if g > 0 and g >= NOISE_SE * se:
        return "pass"
    if g <= 0 and -g >= NOISE_SE * se:
        return "fail"
    return "inconclusive"


def equivalent(d: float, se: float | None, tol: float) -> str:
    """The claim is |d| <= tol: pass when [d - 2 SE, d + 2 SE] lies inside ±tol, fail when it lies outside."""
    if se is None:
        return "inconclusive"
    lo, hi = d - NOISE_SE * se, d + NOISE_SE * se
    if -tol <= lo and hi <= tol:
        return "pass"
    if lo > tol or hi < -tol:
        return "fail"
    return "inconclusive"


def _fmt(x):
    return f"{x:.4g}"


def _noise(e: Estimate, g: float | None = None) -> str:
    if e.se is None:
        return f" [{e.how}]"
    if e.se == 0:
        return f" [SE 0, {e.how}]"
    z = f", {abs(g) / e.se:.1f} SE" if g is not None else ""
    return f" [SE {_fmt(e.se)}{z}, {e.how}]"


# ---------------------------------------------------------------- verdicts

def evaluate(spec: TableSpec, scale: str, samples: Samples, reported: list) -> list[Verdict]:
    """Verdicts of the table's claims at `scale` from the per-seed values."""
    out = []
    det = bool(getattr(spec, "deterministic", False))
    for c in spec.claims:
        if c.scale != scale:
            continue
        v = _one(c, spec, samples, reported, det)
        if v.verdict != "missing" and c.type != "matches_reported":
            v.saturated = _saturated(spec, c, samples)
            if v.saturated:
                lvl = spec.metrics[c.metric].saturated
                v.detail += f"; saturated: every compared row is past {lvl:g}, the metric's ceiling"
        out.append(v)
    return out


def _saturated(spec: TableSpec, c: ClaimSpec, samples: Samples) -> bool:
    m = spec.metrics.get(c.metric)
    lvl = getattr(m, "saturated", None) if m is not None else None
    if lvl is None:
        return False
    vals = [mean(samples, r, c.metric) for r in claim_rows(c)]
    if any(x is None for x in vals):
        return False
    return all((x >= lvl) if m.higher_is_better else (x <= lvl) for x in vals)


def _sign(spec: TableSpec, metric: str) -> float:
    return 1.0 if spec.metrics[metric].higher_is_better else -1.0


def _one(c: ClaimSpec, spec: TableSpec, samples: Samples, reported: list, det: bool) -> Verdict:
    def v(verdict, detail, **nums):
        return Verdict(c.id, c.type, c.text, verdict, detail, nums)

    if c.type == "matches_reported":
        return _matches_reported(c, spec, samples, reported, det, v)
    rows = claim_rows(c)
    m = c.metric
    means = {r: mean(samples, r, m) for r in rows}
    if any(x is None for x in means.values()):
        return v("missing", "needs rows " + ", ".join(r for r in rows if means[r] is None))
    s = _sign(spec, m)
    ctr = lambda coefs: contrast(samples, coefs, m, det)  # noqa: E731

    if c.type in ("better", "vs_best", "comparable"):
        b = c.b
        if c.type == "vs_best":
            b = max(c.rows, key=lambda r: s * means[r])
        e = ctr({c.a: s, b: -s}) if c.a != b else Estimate(0.0, 0.0, f"{c.a} is itself the best")
        adv = e.value
        who = f"best of {len(c.rows)} ({b})" if c.type == "vs_best" else b
        if c.type == "comparable":
            g = adv + c.tol
            verdict = one_sided(g, e.se)
            extra = ""
            if e.se is not None and adv - NOISE_SE * e.se > c.tol:
                extra = f"; {c.a} is better than {b} beyond the tolerance"
            return v(verdict, f"{c.a} {_fmt(means[c.a])} vs {who} {_fmt(means[b])}: advantage {_fmt(adv)} "
                     f"(needs >= -{c.tol:g}){_noise(e, g)}{extra}", a=means[c.a], b=means[b], advantage=adv, se=e.se)
        g = adv - c.margin
        return v(one_sided(g, e.se), f"{c.a} {_fmt(means[c.a])} vs {who} {_fmt(means[b])}: advantage {_fmt(adv)} "
                 f"(needs > {c.margin:g}){_noise(e, g)}", a=means[c.a], b=means[b], advantage=adv, se=e.se)

    if c.type in ("close", "differs"):
        e = ctr({c.a: 1.0, c.b: -1.0})
        d = e.value
        head = f"{c.a} {_fmt(means[c.a])} vs {c.b} {_fmt(means[c.b])}: difference {_fmt(d)}"
        if c.type == "close":
            verdict = equivalent(d, e.se, c.tol)
            extra = ""
            if verdict == "fail":
                better = c.a if s * d > 0 else c.b
                extra = f"; {better} is better beyond the tolerance"
            return v(verdict, f"{head} (needs within ±{c.tol:g}){_noise(e, abs(d) - c.tol)}{extra}",
                     difference=d, se=e.se)
        if e.se is None:
            verdict = "inconclusive"
        elif abs(d) > c.margin and abs(d) - c.margin >= NOISE_SE * e.se:
            verdict = "pass"
        elif equivalent(d, e.se, c.margin) == "pass" and not abs(d) > c.margin:
            verdict = "fail"
        else:
            verdict = "inconclusive"
        return v(verdict, f"{head} (needs |difference| > {c.margin:g}){_noise(e, abs(d) - c.margin)}",
                 difference=d, se=e.se)

    if c.type == "within":
        e = ctr({c.a: 1.0})
        d = e.value - c.value
        return v(equivalent(d, e.se, c.tol), f"{c.a} {_fmt(e.value)} vs {c.value:g} ± {c.tol:g}{_noise(e)}",
                 a=e.value, se=e.se)

    if c.type == "bound":
        e = ctr({c.a: 1.0})
        up = c.direction == "above"
        g = (e.value - c.value) if up else (c.value - e.value)
        return v(one_sided(g, e.se), f"{c.a} {_fmt(e.value)} (needs {'>' if up else '<'} {c.value:g}){_noise(e, g)}",
                 a=e.value, se=e.se)

    if c.type == "ratio":
        a, b = means[c.a], means[c.b]
        r = a / b if b else float("inf")
        if b <= 0:
            return v("inconclusive", f"{c.a}/{c.b} = {_fmt(r)}: the ratio test needs a positive {c.b}", ratio=r)
        e = ctr({c.a: -1.0, c.b: c.value})  # value * b - a > 0  <=>  a / b < value
        se_r = e.se / b if e.se is not None else None
        verdict = one_sided(e.value, e.se)
        if e.se == 0 and e.value == 0:  # a deterministic ratio exactly at its bound: "at most" holds
            verdict = "pass"
        return v(verdict, f"{c.a}/{c.b} = {_fmt(r)} (needs <= {c.value:g})"
                 + (_noise(Estimate(r, se_r, e.how), c.value - r)), ratio=r, se=se_r)

    if c.type == "monotone":
        sgn = 1.0 if c.direction == "increasing" else -1.0
        steps = []
        for x, y in zip(c.rows, c.rows[1:]):
            e = ctr({y: sgn, x: -sgn})
            steps.append((one_sided(e.value, e.se), e))
        vs = [st for st, _ in steps]
        verdict = "fail" if "fail" in vs else "pass" if all(x == "pass" for x in vs) else "inconclusive"
        detail = " -> ".join(_fmt(means[r]) for r in c.rows) + f" ({c.direction}); steps: " + ", ".join(
            f"{st}" + (f" ({abs(e.value) / e.se:.1f} SE)" if e.se else "") for st, e in steps)
        return v(verdict, detail + f" [{steps[0][1].how}]", values=[means[r] for r in c.rows])

    if c.type == "in_interval":
        lo, hi = mean(samples, c.a, c.lo), mean(samples, c.a, c.hi)
        if lo is None or hi is None:
            return v("missing", f"needs metrics {c.lo} and {c.hi} of row {c.a}")
        inside = lo <= c.value <= hi
        wide = c.tol > 0 and (hi - lo) / 2 > c.tol
        verdict = "fail" if not inside else "inconclusive" if wide else "pass"
        extra = f"; half-width {_fmt((hi - lo) / 2)} > {c.tol:g}: too wide to confirm" if inside and wide else ""
        return v(verdict, f"{c.value:g} {'inside' if inside else 'outside'} {c.a}'s interval "
                 f"[{_fmt(lo)}, {_fmt(hi)}] ({c.metric} {_fmt(means[c.a])}){extra}", a=means[c.a], lo=lo, hi=hi)

    if c.type == "tighter":
        hi_a, lo_a = max(c.rows, key=means.get), min(c.rows, key=means.get)
        hi_b, lo_b = max(c.rows_b, key=means.get), min(c.rows_b, key=means.get)
        coefs: dict = {}
        for r, k in ((hi_b, 1.0), (lo_b, -1.0), (hi_a, -1.0), (lo_a, 1.0)):
            coefs[r] = coefs.get(r, 0.0) + k
        e = ctr(coefs) if any(coefs.values()) else Estimate(0.0, 0.0, "same rows")
        ra, rb = means[hi_a] - means[lo_a], means[hi_b] - means[lo_b]
        g = rb - ra - c.margin
        return v(one_sided(g, e.se),
                 f"range over {', '.join(c.rows)}: {_fmt(ra)} ({' / '.join(_fmt(means[r]) for r in c.rows)}); over "
                 f"{', '.join(c.rows_b)}: {_fmt(rb)} ({' / '.join(_fmt(means[r]) for r in c.rows_b)}) "
                 f"(needs first < second - {c.margin:g}){_noise(e, g)}", range_a=ra, range_b=rb, se=e.se)

    if c.type == "gap_increases":
        (a1, b1), (aL, bL) = c.pairs[0], c.pairs[-1]
        coefs = {}
        for r, k in ((aL, s), (bL, -s), (a1, -s), (b1, s)):
            coefs[r] = coefs.get(r, 0.0) + k
        e = ctr(coefs)
        gaps = [s * (means[a] - means[b]) for a, b in c.pairs]
        g = gaps[-1] - gaps[0] - c.margin
        return v(one_sided(g, e.se), "advantage " + " -> ".join(_fmt(x) for x in gaps)
                 + f" (last - first needs > {c.margin:g}){_noise(e, g)}", gaps=gaps, se=e.se)
    return v("missing", f"unknown claim type {c.type}")


def _matches_reported(c, spec, samples, reported, det, v) -> Verdict:
    checks, verdicts, missing = [], [], 0
    for r in reported:
        e = contrast(samples, {r.row: 1.0}, r.metric, det)
        if e is None:
            missing += 1
            continue
        tol = r.tolerance if r.tolerance is not None else c.tol
        verdicts.append(equivalent(e.value - r.value, e.se, tol))
        checks.append(f"{r.row}/{r.metric}: ours {_fmt(e.value)} vs paper {_fmt(r.value)} (tol {tol:g}, "
                      f"{verdicts[-1]})")
    if not checks:
        return v("missing", "no reported number has a matching run")
    verdict = "fail" if "fail" in verdicts else "pass" if all(x == "pass" for x in verdicts) else "inconclusive"
    return v(verdict, "; ".join(checks) + (f"; {missing} not run" if missing else ""))


def counts(claims: list[dict]) -> dict:
    """{verdict: count} over a report's claims, in VERDICTS order."""
    return {k: sum(c["verdict"] == k for c in claims) for k in VERDICTS}


def summary(claims: list[dict]) -> str:
    """'2 pass, 1 fail, 3 inconclusive' (saturated claims counted beside)."""
    n = counts(claims)
    parts = [f"{n[k]} {k}" for k in VERDICTS if n[k] or k in ("pass", "fail", "inconclusive")]
    sat = sum(bool(c.get("saturated")) for c in claims)
    return ", ".join(parts) + (f" ({sat} saturated)" if sat else "")
