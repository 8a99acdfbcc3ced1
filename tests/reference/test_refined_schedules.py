"""refined_schedules_2023: the refinement mapping against the sum written out and the paper's limits
(constant gradient norms give linear decay; the schedule ends at 0 and peaks at 1), the median filter
against a direct per-window median, the shared linear-decay schedule, and the two-pass run (its first
pass is the linear row's run; the second starts from the same initialization)."""
import numpy as np
import pytest
import torch

from optrepro.optim import OptimConfig, lr_factor
from optrepro.papers.refined_schedules_2023 import experiment as ex
from optrepro.papers.refined_schedules_2023 import method
from tests.conftest import StubCtx

pytestmark = pytest.mark.reference


def test_refine_is_the_tail_sum_written_out():
    g = np.random.default_rng(0).uniform(0.5, 3.0, size=40)
    for power in (1.0, 2.0):
        u = g ** -power
        ref = np.array([u[t] * u[t + 1:].sum() for t in range(len(g))])
        np.testing.assert_allclose(method.refine(g, power=power, smooth=0.0), ref / ref.max(), rtol=1e-13, atol=0)


def test_constant_norms_give_linear_decay():
    T = 50
    w = method.refine(np.full(T, 2.5), smooth=0.1)
    np.testing.assert_allclose(w, (T - 1 - np.arange(T)) / (T - 1), rtol=1e-12, atol=1e-15)
    assert w[0] == 1.0 and w[-1] == 0.0


def test_shrinking_norms_give_warmup_and_growing_norms_fast_annealing():
    T = 200
    t = np.arange(T)
    down = method.refine(10.0 ** (-t / T), smooth=0.0)    # norms fall 10x: the peak moves into the run (warm-up)
    assert 0.2 * T < np.argmax(down) < T - 1 and down[0] < 0.5
    up = method.refine(10.0 ** (t / T), smooth=0.0)       # norms grow: the schedule falls faster than linear
    lin = (T - 1 - t) / (T - 1)
    assert np.argmax(up) == 0 and (up[1:-1] < lin[1:-1]).all()


def test_median_filter_is_the_window_median_with_the_end_reflected():
    g = np.random.default_rng(1).uniform(0, 1, size=60)
    width = 2 * (int(0.2 * 60) // 2) + 1  # 13
    padded = np.concatenate([g, g[-2:-2 * width - 2:-1]])  # reflect past the end (edge not repeated)
    h = width // 2
    ref = np.array([np.median(np.concatenate([np.full(max(0, h - i), g[0]), padded[max(0, i - h):i + h + 1]]))
                    for i in range(60)])
    np.testing.assert_allclose(method.smooth_norms(g, 0.2), ref, rtol=0, atol=0)


@pytest.mark.parametrize("g,match", [([1.0], "at least 2"), ([1.0, 0.0], "> 0"), ([1.0, np.nan], "finite")])
def test_refine_rejects_bad_norms(g, match):
    with pytest.raises(ValueError, match=match):
        method.refine(np.array(g))


def test_linear_schedule_decays_to_zero_after_warmup():
    oc = OptimConfig(schedule="linear")
    assert [lr_factor(oc, s, 4) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    oc = OptimConfig(schedule="linear", warmup_steps=2)
    assert [lr_factor(oc, s, 6) for s in range(6)] == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]


def _cfg(**kw):
    cfg = ex.RefineConfig(dataset="digits", model="mlp", epochs=2, val_frac=0.2, **kw)
    cfg.optim = OptimConfig(name="sgd", lr=0.1, momentum=0.9, schedule="linear")
    cfg.train.batch_size = 64
    return cfg


def test_refined_run_first_pass_is_the_linear_run_and_second_uses_the_refined_factors():
    from optrepro.run import seed_everything
    seed_everything(0)
    linear = ex.run(_cfg(), StubCtx())
    seed_everything(0)
    ctx = StubCtx()
    refined = ex.run(_cfg(refine=True), ctx)
    assert refined["pass1_test_loss"] == linear["test_loss"]
    assert refined["pass1_val_loss"] == linear["val_loss"]
    assert refined["test_loss"] != linear["test_loss"]
    lrs = [kw["lr"] for _, kw in ctx.logged if "lr" in kw]
    assert max(lrs) <= 0.1 + 1e-12


def test_refined_second_pass_with_linear_factors_repeats_the_linear_run(monkeypatch):
    """With the mapping replaced by linear decay the second pass must equal the first: same init, data
    order and schedule (the seed is reset between the passes)."""
    from optrepro.run import seed_everything
    T = []
    monkeypatch.setattr(ex.method, "refine", lambda g, power, smooth: (T.append(len(g)) or
                                                                     np.maximum(0.0, 1 - np.arange(len(g)) / len(g))))
    seed_everything(0)
    out = ex.run(_cfg(refine=True), StubCtx())
    assert out["test_loss"] == out["pass1_test_loss"] and T and T[0] > 10
