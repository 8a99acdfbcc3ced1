import pytest

from optrepro.config import parse_table
from optrepro.report import claims
from optrepro.report.reported import load

pytestmark = pytest.mark.unit


def _spec(claim, hib=True, deterministic=True, saturated=None):
    return parse_table({"rows": {r: {} for r in "abcd"},
                        "metrics": {"m": {"higher_is_better": hib, "saturated": saturated}},
                        "deterministic": deterministic,
                        "claims": [dict(claim, text="t")], "scales": {"smoke": {}, "mini": {}, "full": {}}}, "t")


def _one_seed(means):
    return {r: {"m": {0: float(x)}} for r, x in means.items()}


# A deterministic table (closed forms, fits to fixed data): one seed, no noise; the verdict follows the sign.
@pytest.mark.parametrize("claim,means,hib,verdict", [
    ({"type": "better", "metric": "m", "a": "a", "b": "b"}, {"a": 2, "b": 1}, True, "pass"),
    ({"type": "better", "metric": "m", "a": "a", "b": "b"}, {"a": 2, "b": 1}, False, "fail"),
    ({"type": "better", "metric": "m", "a": "a", "b": "b", "margin": 1.5}, {"a": 2, "b": 1}, True, "fail"),
    ({"type": "within", "metric": "m", "a": "a", "value": 1.0, "tol": 0.2}, {"a": 1.1}, True, "pass"),
    ({"type": "within", "metric": "m", "a": "a", "value": 1.0, "tol": 0.05}, {"a": 1.1}, True, "fail"),
    ({"type": "bound", "metric": "m", "a": "a", "value": 1.0, "direction": "above"}, {"a": 1.1}, True, "pass"),
    ({"type": "bound", "metric": "m", "a": "a", "value": 1.0, "direction": "below"}, {"a": 1.1}, True, "fail"),
    ({"type": "monotone", "metric": "m", "rows": ["a", "b", "c"]}, {"a": 1, "b": 2, "c": 3}, True, "pass"),
    ({"type": "monotone", "metric": "m", "rows": ["a", "b", "c"]}, {"a": 1, "b": 3, "c": 2}, True, "fail"),
    ({"type": "ratio", "metric": "m", "a": "a", "b": "b", "value": 0.5}, {"a": 1, "b": 4}, True, "pass"),
    ({"type": "ratio", "metric": "m", "a": "a", "b": "b", "value": 0.5}, {"a": 3, "b": 4}, True, "fail"),
    ({"type": "gap_increases", "metric": "m", "pairs": [["a", "b"], ["c", "d"]]},
     {"a": 1, "b": 1, "c": 3, "d": 1}, True, "pass"),
    ({"type": "gap_increases", "metric": "m", "pairs": [["a", "b"], ["c", "d"]]},
     {"a": 3, "b": 1, "c": 1, "d": 1}, True, "fail"),
    ({"type": "better", "metric": "m", "a": "a", "b": "b"}, {"a": 2}, True, "missing"),
    ({"type": "vs_best", "metric": "m", "a": "a", "rows": ["b", "c"], "margin": -1.0},
     {"a": 2.5, "b": 1, "c": 3}, True, "pass"),
    ({"type": "vs_best", "metric": "m", "a": "a", "rows": ["b", "c"], "margin": -0.4},
     {"a": 2.5, "b": 1, "c": 3}, True, "fail"),
    ({"type": "vs_best", "metric": "m", "a": "a", "rows": ["b", "c"]}, {"a": 2.5, "b": 1, "c": 3}, False, "fail"),
    ({"type": "vs_best", "metric": "m", "a": "a", "rows": ["b", "c"]}, {"a": 0.5, "b": 1, "c": 3}, False, "pass"),
    ({"type": "differs", "metric": "m", "a": "a", "b": "b", "margin": 0.5}, {"a": 1, "b": 2}, False, "pass"),
    ({"type": "differs", "metric": "m", "a": "a", "b": "b", "margin": 0.5}, {"a": 2, "b": 1}, True, "pass"),
    ({"type": "differs", "metric": "m", "a": "a", "b": "b", "margin": 0.5}, {"a": 1.2, "b": 1}, True, "fail"),
    ({"type": "close", "metric": "m", "a": "a", "b": "b", "tol": 0.5}, {"a": 1.2, "b": 1}, True, "pass"),
    ({"type": "close", "metric": "m", "a": "a", "b": "b", "tol": 0.5}, {"a": 2, "b": 1}, True, "fail"),
    ({"type": "comparable", "metric": "m", "a": "a", "b": "b", "tol": 0.5}, {"a": 0.8, "b": 1}, True, "pass"),
    ({"type": "comparable", "metric": "m", "a": "a", "b": "b", "tol": 0.5}, {"a": 5, "b": 1}, True, "pass"),
    ({"type": "comparable", "metric": "m", "a": "a", "b": "b", "tol": 0.5}, {"a": 0.2, "b": 1}, True, "fail"),
    ({"type": "tighter", "metric": "m", "rows": ["a", "b"], "rows_b": ["c", "d"]},
     {"a": 1, "b": 1.5, "c": 0, "d": 2}, True, "pass"),
    ({"type": "tighter", "metric": "m", "rows": ["a", "b"], "rows_b": ["c", "d"], "margin": 1.0},
     {"a": 1, "b": 1.5, "c": 0, "d": 1}, True, "fail"),
])
def test_claim_verdicts(claim, means, hib, verdict):
    spec = _spec(claim, hib)
    assert claims.validate(spec) == []
    [v] = claims.evaluate(spec, "mini", _one_seed(means), [])
    assert v.verdict == verdict, v.detail


def test_one_seed_is_inconclusive_unless_deterministic():
    spec = _spec({"type": "better", "metric": "m", "a": "a", "b": "b"}, deterministic=False)
    [v] = claims.evaluate(spec, "mini", _one_seed({"a": 2, "b": 1}), [])
    assert v.verdict == "inconclusive" and "noise unknown" in v.detail


BETTER = {"type": "better", "metric": "m", "a": "a", "b": "b"}


def test_gap_within_two_standard_errors_is_inconclusive_not_pass():
    # a - b = 1.0 on average, Welch SE = sqrt(1/3 + 1/3) = 0.816: 1.2 SE. The old rule said PASS.
    spec = _spec(BETTER, deterministic=False)
    s = {"a": {"m": {0: 1.0, 1: 2.0, 2: 3.0}}, "b": {"m": {3: 0.0, 4: 1.0, 5: 2.0}}}
    [v] = claims.evaluate(spec, "mini", s, [])
    assert v.verdict == "inconclusive" and "Welch" in v.detail
    assert v.numbers["se"] == pytest.approx((1 / 3 + 1 / 3) ** 0.5)
    # a gap of 1.0 at 12 SE (Welch): fail one way, pass the other
    lo, hi = {"m": {3: 0.0, 4: 0.1, 5: 0.2}}, {"m": {0: 1.0, 1: 1.1, 2: 1.2}}
    assert claims.evaluate(spec, "mini", {"a": lo, "b": hi}, [])[0].verdict == "fail"
    assert claims.evaluate(spec, "mini", {"a": hi, "b": lo}, [])[0].verdict == "pass"


def test_rows_sharing_seeds_are_paired():
    # Seed effects shared by both rows: unpaired the gap is noise, paired it is 0.1 every seed (SE 0).
    spec = _spec(BETTER, deterministic=False)
    s = {"a": {"m": {0: 1.1, 1: 5.1, 2: 9.1}}, "b": {"m": {0: 1.0, 1: 5.0, 2: 9.0}}}
    [v] = claims.evaluate(spec, "mini", s, [])
    assert v.verdict == "pass" and "paired over 3 seeds" in v.detail
    assert v.numbers["se"] == pytest.approx(0.0, abs=1e-12)


def test_equivalence_needs_the_whole_interval_inside_the_tolerance():
    spec = _spec({"type": "close", "metric": "m", "a": "a", "b": "b", "tol": 0.5}, deterministic=False)
    tight = {"a": {"m": {0: 1.1, 1: 1.2, 2: 1.3}}, "b": {"m": {0: 1.0, 1: 1.1, 2: 1.2}}}
    assert claims.evaluate(spec, "mini", tight, [])[0].verdict == "pass"
    # mean difference 0.1, well inside ±0.5, but the noise reaches beyond it: not a pass
    noisy = {"a": {"m": {0: 0.0, 1: 1.6, 2: 1.3}}, "b": {"m": {0: 1.0, 1: 0.4, 2: 1.2}}}
    v = claims.evaluate(spec, "mini", noisy, [])[0]
    assert v.verdict == "inconclusive", v.detail
    far = {"a": {"m": {0: 3.0, 1: 3.1, 2: 3.2}}, "b": {"m": {0: 1.0, 1: 1.1, 2: 1.2}}}
    v = claims.evaluate(spec, "mini", far, [])[0]
    assert v.verdict == "fail" and "a is better beyond the tolerance" in v.detail


def test_comparable_reports_a_much_better_row_as_such_not_as_failure():
    spec = _spec({"type": "comparable", "metric": "m", "a": "a", "b": "b", "tol": 0.05}, deterministic=False)
    s = {"a": {"m": {0: 0.9, 1: 0.92, 2: 0.91}}, "b": {"m": {0: 0.6, 1: 0.65, 2: 0.62}}}
    [v] = claims.evaluate(spec, "mini", s, [])
    assert v.verdict == "pass" and "better than b beyond the tolerance" in v.detail


def test_ratio_and_monotone_use_the_noise():
    spec = _spec({"type": "ratio", "metric": "m", "a": "a", "b": "b", "value": 0.5}, deterministic=False)
    s = {"a": {"m": {0: 1.0, 1: 3.0, 2: 5.0}}, "b": {"m": {0: 6.0, 1: 7.0, 2: 8.0}}}  # 3/7, noisy
    assert claims.evaluate(spec, "mini", s, [])[0].verdict == "inconclusive"
    s = {"a": {"m": {0: 1.0, 1: 1.1, 2: 1.2}}, "b": {"m": {0: 6.0, 1: 7.0, 2: 8.0}}}
    assert claims.evaluate(spec, "mini", s, [])[0].verdict == "pass"
    spec = _spec({"type": "monotone", "metric": "m", "rows": ["a", "b", "c"]}, deterministic=False)
    s = {"a": {"m": {0: 1.0, 1: 1.1, 2: 1.2}}, "b": {"m": {0: 2.0, 1: 2.1, 2: 2.2}},
         "c": {"m": {0: 2.0, 1: 3.1, 2: 1.5}}}  # second step within noise
    v = claims.evaluate(spec, "mini", s, [])[0]
    assert v.verdict == "inconclusive" and "steps: pass, inconclusive (0.2 SE)" in v.detail


def test_ratio_exactly_at_its_bound_passes_when_deterministic():
    """'at most': a count that equals its bound in every seed passes; one above it fails."""
    spec = _spec({"type": "ratio", "metric": "m", "a": "a", "b": "b", "value": 1.0}, deterministic=False)
    s = {"a": {"m": {0: 4.0, 1: 4.0, 2: 4.0}}, "b": {"m": {0: 4.0, 1: 4.0, 2: 4.0}}}
    assert claims.evaluate(spec, "mini", s, [])[0].verdict == "pass"
    s = {"a": {"m": {0: 4.5, 1: 4.5, 2: 4.5}}, "b": {"m": {0: 4.0, 1: 4.0, 2: 4.0}}}
    assert claims.evaluate(spec, "mini", s, [])[0].verdict == "fail"


def test_saturated_metric_is_flagged():
    spec = _spec(BETTER, saturated=0.99)
    [v] = claims.evaluate(spec, "mini", _one_seed({"a": 0.996, "b": 0.993}), [])
    assert v.saturated and "saturated" in v.detail
    [v] = claims.evaluate(spec, "mini", _one_seed({"a": 0.996, "b": 0.95}), [])
    assert not v.saturated


def test_summary_counts_three_verdicts():
    cs = [{"verdict": "pass"}, {"verdict": "inconclusive", "saturated": True}, {"verdict": "fail"},
          {"verdict": "inconclusive"}]
    assert claims.summary(cs) == "1 pass, 1 fail, 2 inconclusive (1 saturated)"


def test_validate_flags_unknown_rows_and_metrics():
    spec = _spec({"type": "better", "metric": "zz", "a": "a", "b": "nope"})
    errs = claims.validate(spec)
    assert any("zz" in e for e in errs) and any("nope" in e for e in errs)


def test_reported_csv_schema(tmp_path):
    p = tmp_path / "r.csv"
    head = "table,row,column,metric,value,std,higher_is_better,tolerance,kind,source\n"
    p.write_text(head + "t,a,c,m,1.5,,true,0.1,reported,arXiv Table 1\n")
    [r] = load(p)
    assert r.value == 1.5 and r.std is None and r.higher_is_better
    for bad, msg in [("t,a,c,m,x,,true,,reported,s", "not a number"), ("t,a,c,m,1,,true,,guess,s", "kind"),
                     ("t,a,c,m,1,,true,,reported,", "source"), ("t,a,c,m,1,,yes,,reported,s", "higher_is_better")]:
        p.write_text(head + bad + "\n")
        with pytest.raises(ValueError, match=msg):
            load(p)


@pytest.mark.parametrize("value,tol,verdict", [(0.5, 0.0, "pass"), (0.45, 0.0, "fail"), (0.61, 0.0, "fail"),
                                               (0.5, 0.06, "pass"), (0.5, 0.04, "inconclusive"), (0.45, 0.04, "fail")])
def test_in_interval_uses_the_rows_own_interval(value, tol, verdict):
    spec = parse_table({"rows": {"a": {}},
                        "metrics": {"m": {"higher_is_better": True}, "lo": {"higher_is_better": True},
                                    "hi": {"higher_is_better": True}},
                        "claims": [{"id": "c", "type": "in_interval", "metric": "m", "a": "a", "lo": "lo", "hi": "hi",
                                    "value": value, "tol": tol, "text": "t"}],
                        "scales": {"smoke": {}, "mini": {}, "full": {}}}, "t")
    assert claims.validate(spec) == []
    samples = {"a": {"m": {0: 0.55, 1: 0.56}, "lo": {0: 0.48, 1: 0.50}, "hi": {0: 0.60, 1: 0.60}}}
    [v] = claims.evaluate(spec, "mini", samples, [])
    assert v.verdict == verdict, v.detail


def test_in_interval_needs_its_metrics():
    spec = parse_table({"rows": {"a": {}}, "metrics": {"m": {"higher_is_better": True}},
                        "claims": [{"id": "c", "type": "in_interval", "metric": "m", "a": "a", "lo": "x", "hi": "y",
                                    "text": "t"}],
                        "scales": {"smoke": {}, "mini": {}, "full": {}}}, "t")
    assert any("in_interval needs" in e for e in claims.validate(spec))
