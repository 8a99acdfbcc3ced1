"""The random-feature model's closed forms (common.scaling.random_features) against the literal
equations: gradient descent run step by step on w, the matrix exponential of the flow, the
projection residual, and the finite-data flow solved densely."""
import numpy as np
import pytest
from scipy.linalg import expm

from optrepro.scaling.random_features import Solved, Theory, finite_data_curves, loglog_slope, problem, simulate_gd

pytestmark = pytest.mark.reference


def _setup(N=12, M=60, a=2.0, b=1.5, seed=0):
    lam, ws = problem(M, a, b)
    A = np.random.default_rng(seed).standard_normal((N, M))
    return A, lam, ws


def test_discrete_closed_form_equals_gradient_descent_step_by_step():
    A, lam, ws = _setup()
    sim = simulate_gd(A, lam, ws, eta=0.2, steps=80)
    np.testing.assert_allclose(Solved(A, lam, ws).loss_gd(np.arange(81), 0.2), sim, rtol=1e-11, atol=1e-14)


def test_flow_equals_the_matrix_exponential_and_small_steps():
    A, lam, ws = _setup()
    N = A.shape[0]
    B = A * np.sqrt(lam) / np.sqrt(N)
    S, u0 = B.T @ B, -np.sqrt(lam) * ws
    s = Solved(A, lam, ws)
    for t in (0.0, 0.5, 3.0, 40.0):
        u = expm(-S * t) @ u0
        assert s.loss(t)[0] == pytest.approx(float(u @ u), rel=1e-10)
    # gradient descent with a small step follows the flow (error O(eta))
    eta = 1e-3
    gd = simulate_gd(A, lam, ws, eta, 3000)
    assert gd[-1] == pytest.approx(s.loss(3.0)[0], rel=5e-3)


def test_floor_is_the_residual_outside_the_students_span():
    A, lam, ws = _setup(N=8, M=40)
    s = Solved(A, lam, ws)
    # the best v in the span of A's rows: least squares in the Lambda-weighted norm
    W = np.sqrt(lam)
    coef, *_ = np.linalg.lstsq((A * W).T, W * ws, rcond=None)
    r = (A * W).T @ coef - W * ws
    assert s.floor == pytest.approx(float(r @ r), rel=1e-9)
    assert s.loss(1e9)[0] == pytest.approx(s.floor, rel=1e-6)
    assert s.total == pytest.approx(np.sum(np.arange(1, 41, dtype=float) ** -2.0))


def test_finite_data_flow_against_a_dense_solution():
    A, lam, ws = _setup(N=10, M=30)
    rng = np.random.default_rng(5)
    train, test = finite_data_curves(A, lam, ws, 6, [0.0, 2.0, 1e6], np.random.default_rng(5))
    # the same samples, the flow dw/dt = -(G w - h) integrated by the matrix exponential
    X = rng.standard_normal((6, 30)) * np.sqrt(lam)
    F = X @ A.T / np.sqrt(10)
    y = X @ ws
    G, h = F.T @ F / 6, F.T @ y / 6
    n = G.shape[0]
    big = np.zeros((n + 1, n + 1))
    big[:n, :n], big[:n, n] = -G, h
    w2 = expm(big * 2.0)[:n, n]  # w(2) from w(0) = 0
    assert train[1] == pytest.approx(float(np.mean((F @ w2 - y) ** 2)), rel=1e-8)
    r = A.T @ w2 / np.sqrt(10) - ws
    assert test[1] == pytest.approx(float(np.sum(lam * r * r)), rel=1e-8)
    assert train[0] == pytest.approx(float(np.mean(y ** 2)))
    assert train[2] < 1e-8 < test[2]  # 10 features, 6 samples: the flow interpolates


def test_theory_and_slopes():
    th = Theory(2.0, 1.5)
    assert (th.time_exponent, th.width_exponent) == pytest.approx((2 / 3, 1.0))
    assert th.n_star_exponent + th.t_star_exponent == pytest.approx(1.0)
    assert th.loss_exponent == pytest.approx(th.width_exponent * th.n_star_exponent)
    x = np.geomspace(1, 100, 7)
    assert loglog_slope(x, 3 * x ** -0.7) == pytest.approx(-0.7)
    with pytest.raises(ValueError):
        problem(10, 1.0, 1.0)
