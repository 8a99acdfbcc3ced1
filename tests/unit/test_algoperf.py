"""The AlgoPerf scoring on hand-computed cases, the search spaces from the registry, and one real
trial reaching an easy target."""
import math

import pytest

from optrepro.optim import algoperf

pytestmark = pytest.mark.unit


def test_ratios_profiles_and_score_by_hand():
    times = {"a": {"w1": 1.0, "w2": 4.0}, "b": {"w1": 2.0, "w2": 2.0}, "c": {"w1": math.inf, "w2": 10.0}}
    r = algoperf.ratios(times)
    assert r["a"] == {"w1": 1.0, "w2": 2.0}
    assert r["b"] == {"w1": 2.0, "w2": 1.0}
    assert r["c"]["w1"] == math.inf and r["c"]["w2"] == 5.0
    assert algoperf.profile(r["a"], [1.0, 1.5, 2.0]) == [0.5, 0.5, 1.0]
    # score = ∫_1^4 ρ / 3: a has ratios 1 and 2 -> (3 + 2) / (2 * 3)
    assert algoperf.score(r["a"]) == pytest.approx(5 / 6)
    assert algoperf.score(r["b"]) == pytest.approx(5 / 6)
    assert algoperf.score(r["c"]) == 0.0  # never within 4x
    assert algoperf.score({"w": 1.0}) == 1.0


def test_search_spaces_come_from_the_registry():
    assert algoperf.search_space("dog") == {"search": {}, "fixed": {"lr": 1.0}}  # declared in paper.yaml
    sf = algoperf.search_space("sgd_schedulefree")
    assert sf["search"]["lr"] == [0.01, 1.0] and sf["fixed"]["momentum"] == 0.9
    g = algoperf.search_space("grams")  # not declared: lr around the class default, 1e-3
    assert g["search"]["lr"] == pytest.approx([1e-4, 1e-2])
    pts = algoperf.trial_points(g, 4, seed=0)
    assert len(pts) == 4 and all(1e-4 <= p["lr"] <= 1e-2 for p in pts)
    assert pts == algoperf.trial_points(g, 4, seed=0)  # deterministic per study seed


def test_a_trial_reaches_an_easy_target_and_misses_an_impossible_one(monkeypatch):
    monkeypatch.setenv("REPRO_COMPILE", "0")
    wl = algoperf.WORKLOADS["digits_mlp"]
    easy = algoperf.Workload("easy", "val_error", 0.5, 200, 10, wl.build)
    r = algoperf.run_trial(easy, "adam", {"lr": 3e-3}, seed=0)
    assert 0 < r["steps"] <= 200 and r["steps"] % 10 == 0 and r["best"] <= 0.5
    never = algoperf.Workload("never", "val_error", -1.0, 20, 10, wl.build)
    r = algoperf.run_trial(never, "adam", {"lr": 3e-3}, seed=0)
    assert r["steps"] == math.inf and r["time_s"] == math.inf


def test_tuning_picks_the_trial_with_fewest_steps_not_the_fastest_clock(monkeypatch):
    """Wall times of close trials swap between reruns; steps do not, so the winner must not flip."""
    outcomes = iter([{"steps": 300.0, "time_s": 1.0, "best": 0.04},   # faster clock, more steps
                     {"steps": 200.0, "time_s": 1.1, "best": 0.045},
                     {"steps": 200.0, "time_s": 0.9, "best": 0.03}])  # tie on steps: lower best wins
    monkeypatch.setattr(algoperf, "run_trial", lambda *a, **k: dict(next(outcomes)))
    monkeypatch.setattr(algoperf, "trial_points", lambda space, n, seed: [{"lr": 1.0}, {"lr": 2.0}, {"lr": 3.0}])
    wl = algoperf.WORKLOADS["digits_mlp"]
    r = algoperf.tune(wl, "adam", 3, seed=0)
    assert r["hparams"] == {"lr": 3.0} and r["steps"] == 200.0 and r["time_s"] == 0.9
