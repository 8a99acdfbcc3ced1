import pytest

from common.config import parse_table
from common.report import claims
from common.report.reported import load

pytestmark = pytest.mark.unit


def _spec(claim, hib=True):
    return parse_table({"rows": {r: {} for r in "abcd"}, "metrics": {"m": {"higher_is_better": hib}},
                        "claims": [dict(claim, text="t")], "scales": {"smoke": {}, "mini": {}, "full": {}}}, "t")


@pytest.mark.parametrize("claim,means,hib,verdict", [
    ({"type": "better", "metric": "m", "a": "a", "b": "b"}, {"a": 2, "b": 1}, True, "pass"),
    ({"type": "better", "metric": "m", "a": "a", "b": "b"}, {"a": 2, "b": 1}, False, "fail"),
    ({"type": "better", "metric": "m", "a": "a", "b": "b", "margin": 1.5}, {"a": 2, "b": 1}, True, "fail"),
    ({"type": "within", "metric": "m", "a": "a", "value": 1.0, "tol": 0.2}, {"a": 1.1}, True, "pass"),
    ({"type": "within", "metric": "m", "a": "a", "value": 1.0, "tol": 0.05}, {"a": 1.1}, True, "fail"),
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
    ({"type": "tighter", "metric": "m", "rows": ["a", "b"], "rows_b": ["c", "d"]},
     {"a": 1, "b": 1.5, "c": 0, "d": 2}, True, "pass"),
    ({"type": "tighter", "metric": "m", "rows": ["a", "b"], "rows_b": ["c", "d"], "margin": 1.0},
     {"a": 1, "b": 1.5, "c": 0, "d": 1}, True, "fail"),
])
def test_claim_verdicts(claim, means, hib, verdict):
    spec = _spec(claim, hib)
    assert claims.validate(spec) == []
    [v] = claims.evaluate(spec, "mini", {r: {"m": x} for r, x in means.items()}, [])
    assert v.verdict == verdict, v.detail


def test_noise_is_stated_in_standard_errors():
    spec = _spec({"type": "better", "metric": "m", "a": "a", "b": "b"})
    means = {"a": {"m": 2.0}, "b": {"m": 1.0}}
    [v] = claims.evaluate(spec, "mini", means, [], {"a": {"m": (1.0, 4)}, "b": {"m": (1.0, 4)}})
    assert v.verdict == "pass" and "1.4 SE (within noise)" in v.detail  # se = sqrt(1/4 + 1/4)
    [v] = claims.evaluate(spec, "mini", means, [], {"a": {"m": (0.1, 4)}, "b": {"m": (0.1, 4)}})
    assert "14.1 SE" in v.detail and "within noise" not in v.detail
    [v] = claims.evaluate(spec, "mini", means, [], {"a": {"m": (1.0, 1)}, "b": {"m": (1.0, 4)}})
    assert "SE" not in v.detail  # one seed: no standard error


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
