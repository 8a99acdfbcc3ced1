"""phases_2024: the exact expected risk of one-pass SGD on the PLRF model against literal SGD and
against its own step-by-step recursion; the predicted exponents' algebra."""
import numpy as np
import pytest

from optrepro.papers.phases_2024.method import (expected_risk, expected_risk_recursion, phase, plrf, predicted_exponents,
                                       risk, sgd_eigen, sgd_literal, spectrum)

pytestmark = pytest.mark.reference


def _problem(alpha=1.0, beta=0.75, v=96, d=12, seed=0):
    A, c = plrf(alpha, beta, v, d, seed)
    lr = 0.5 / np.sum(np.arange(1, v + 1, dtype=float) ** (-2 * alpha))
    return A, c, spectrum(A, c), lr


@pytest.mark.parametrize("batch", [1, 3])
def test_closed_form_equals_recursion(batch):
    _, _, sp, lr = _problem()
    r = np.arange(0, 301)
    np.testing.assert_allclose(expected_risk(sp, lr, batch, r), expected_risk_recursion(sp, lr, batch, 300), rtol=1e-10)


def test_spectrum_is_the_least_squares_problem():
    A, c, sp, _ = _problem()
    theta, *_ = np.linalg.lstsq(A, c, rcond=None)
    assert abs(sp.sigma2 - 2 * risk(A, c, theta)) < 1e-12
    assert abs(sp.risk0 - risk(A, c, np.zeros(A.shape[1]))) < 1e-15
    assert np.isclose(np.sum(sp.u ** 2), np.sum(theta ** 2))


def test_endpoints_of_the_expected_risk():
    """r = 0: P(0). r -> infinity with a tiny lr: the best risk d features reach (SGD noise -> 0)."""
    _, _, sp, lr = _problem()
    assert np.isclose(expected_risk(sp, lr, 1, [0])[0], sp.risk0, rtol=1e-12)
    far = expected_risk(sp, lr * 1e-3, 1, [10 ** 12])[0]
    assert sp.sigma2 / 2 <= far < sp.sigma2 / 2 * (1 + 1e-2)


@pytest.mark.parametrize("batch", [1, 2])
def test_literal_sgd_matches_exact_expectation(batch):
    """Mean population risk of literal one-pass SGD (fresh z ~ N(0, I_v) per sample) over 300 runs
    is within 4 standard errors of the closed form at every evaluated step."""
    A, c, sp, lr = _problem()
    at = [1, 5, 20, 60, 150]
    runs = np.array([sgd_literal(A, c, lr, batch, 150, at, seed=s) for s in range(300)])
    exact = expected_risk(sp, lr, batch, at)
    se = runs.std(0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.abs(runs.mean(0) - exact) < 4 * se), (runs.mean(0), exact, se)


def test_eigenbasis_sgd_matches_exact_expectation_for_padded_sizes():
    """sgd_eigen runs two sizes at once (the smaller zero-padded); each matches its own closed form."""
    A1, c1, sp1, lr = _problem(d=8)
    _, _, sp2, _ = _problem(d=20, seed=1)
    at = [0, 3, 30, 200]
    out = sgd_eigen([sp1, sp2], lr, 1, at, seeds=2000, seed=0)
    for i, sp in enumerate([sp1, sp2]):
        exact = expected_risk(sp, lr, 1, at)
        se = out[i].std(0, ddof=1) / np.sqrt(out.shape[1]) + 1e-12
        assert np.all(np.abs(out[i].mean(0) - exact) <= 4 * se), (out[i].mean(0), exact)


def test_nested_draws_share_columns():
    A_small, _ = plrf(1.0, 0.5, 50, 5, seed=3, d_nest=20)
    A_big, _ = plrf(1.0, 0.5, 50, 20, seed=3, d_nest=20)
    np.testing.assert_allclose(A_small * np.sqrt(5), A_big[:, :5] * np.sqrt(20))
    with pytest.raises(ValueError):
        plrf(1.0, 0.5, 50, 30, d_nest=20)


def test_unstable_learning_rate_is_refused():
    _, _, sp, lr = _problem()
    with pytest.raises(ValueError, match="not mean-square stable"):
        expected_risk(sp, 20 * lr / 0.5, 1, [10])


def test_phase_exponents_are_continuous_across_boundaries():
    a, eps = 1.3, 1e-9
    for lo, hi in (((a, 0.5 - eps), (a, 0.5 + eps)), ((a, a - eps), (a, a + eps))):
        assert phase(*lo) != phase(*hi)
        np.testing.assert_allclose(predicted_exponents(*lo), predicted_exponents(*hi), atol=1e-6)
    assert [phase(1, 0.25), phase(1, 0.75), phase(0.75, 1.25)] == ["Ia", "II", "III"]
    assert predicted_exponents(0.8, 2.0)[0] == predicted_exponents(3.0, 5.0)[0] == 0.5
    with pytest.raises(ValueError, match="high-dimensional line"):
        phase(0.4, 1.0)
