"""The diagonal linear network of papers/large_steps_sparse_2023 against autograd, the exact one-step
residual, and the closed-form limit of gradient flow (the hyperbolic-entropy interpolator): small-step
GD lands on it, at a distance that shrinks with the step, and far from the least-l2 interpolator."""
import numpy as np
import pytest
import torch

from optrepro.papers.large_steps_sparse_2023 import method

pytestmark = pytest.mark.reference


def _point(d=12, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal(d), g.standard_normal(d), g.standard_normal(d)


def test_example_gradient_equals_autograd():
    u, v, x = _point()
    y = 0.3
    ut, vt = torch.tensor(u, requires_grad=True), torch.tensor(v, requires_grad=True)
    loss = 0.5 * ((torch.tensor(x) * ut * vt).sum() - y) ** 2
    loss.backward()
    gu, gv, e = method.example_grad(u, v, x, y)
    assert e == pytest.approx(float(x @ (u * v)) - y, rel=1e-15)
    np.testing.assert_allclose(gu, ut.grad.numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gv, vt.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_full_gradient_equals_autograd():
    g = np.random.default_rng(3)
    X, y = g.standard_normal((7, 5)), g.standard_normal(7)
    u, v = g.standard_normal(5), g.standard_normal(5)
    ut, vt = torch.tensor(u, requires_grad=True), torch.tensor(v, requires_grad=True)
    r = torch.tensor(X) @ (ut * vt) - torch.tensor(y)
    ((r @ r) / (2 * 7)).backward()
    gu, gv = method.full_grad(u, v, X, y)
    np.testing.assert_allclose(gu, ut.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(gv, vt.grad.numpy(), rtol=1e-13)
    assert method.loss(X, y, u * v) == pytest.approx(float((r @ r).detach()) / 14, rel=1e-14)


def test_curvature_is_the_top_hessian_eigenvalue_where_the_residual_vanishes():
    u, v, x = _point(d=9, seed=1)
    y = float(x @ (u * v))  # e = 0: the Hessian is J^T J, rank one
    xt = torch.tensor(x)

    def l(w):
        return 0.5 * ((xt * w[:9] * w[9:]).sum() - y) ** 2

    H = torch.autograd.functional.hessian(l, torch.tensor(np.concatenate([u, v])))
    eig = torch.linalg.eigvalsh(H)
    assert method.example_curvature(u, v, x) == pytest.approx(float(eig[-1]), rel=1e-12)
    assert float(eig[-2]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("c", [0.5, 1.0, 1.5, 1.9])
def test_normalized_step_residual_is_the_exact_quadratic(c):
    # gamma = c / lambda: e' = (1 - c) e + gamma^2 e^2 sum_j x_j^3 u_j v_j, exactly
    u, v, x = _point(d=10, seed=2)
    y = float(x @ (u * v)) - 0.05
    gu, gv, e = method.example_grad(u, v, x, y)
    gamma = c / method.example_curvature(u, v, x)
    u2, v2 = u - gamma * gu, v - gamma * gv
    e2 = float(x @ (u2 * v2)) - y
    assert e2 == pytest.approx((1 - c) * e + gamma ** 2 * e ** 2 * float((x ** 3 * u * v).sum()), rel=1e-10)
    if c > 1:
        assert np.sign(e2) == -np.sign(e)  # the jump to the other side of the example's valley


def test_sgd_steps_are_the_literal_updates_in_both_modes():
    X, y, *_ = method.sparse_regression(6, 8, 2, 4, seed=0)
    order = np.random.default_rng(11).integers(6, size=5)
    for normalized, base in ((False, 0.03), (True, 0.7)):
        rate = method.step_schedule(base, 5, 0.6, 10.0)
        assert [rate(t) for t in range(5)] == [base] * 3 + [base / 10] * 2
        u, v = 0.1 * np.ones(8), np.zeros(8)
        for t in range(5):
            x = X[order[t]]
            e = x @ (u * v) - y[order[t]]
            gamma = rate(t) / (np.sum((x * u) ** 2) + np.sum((x * v) ** 2)) if normalized else rate(t)
            u, v = u - gamma * e * x * v, v - gamma * e * x * u
        (t, ue, ve), = list(method.sgd(X, y, 5, rate, normalized=normalized, alpha=0.1, seed=11))
        assert t == 5
        np.testing.assert_allclose(ue, u, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(ve, v, rtol=1e-12, atol=1e-16)


def test_sgd_reports_divergence_instead_of_overflowing():
    X, y, *_ = method.sparse_regression(10, 20, 3, 4, seed=0)
    out = list(method.sgd(X, y, 2000, lambda t: 5.0, normalized=False, alpha=0.1, seed=0))
    t, u, v = out[-1]
    assert u is None and v is None and 0 < t < 2000


def test_gradient_flow_limit_solves_its_kkt_conditions_and_minimises_q():
    X, y, *_ = method.sparse_regression(10, 30, 3, 4, seed=0)
    beta = method.gradient_flow_limit(X, y, 0.3)
    np.testing.assert_allclose(X @ beta, y, atol=1e-9)
    # beta = 2 (alpha/2)^2 sinh(X^T nu): arcsinh(beta / (2 a^2)) lies in the row space of X
    z = np.arcsinh(beta / (2 * 0.15 ** 2))
    nu = np.linalg.lstsq(X.T, z, rcond=None)[0]
    np.testing.assert_allclose(X.T @ nu, z, atol=1e-7)
    q = method.hyperbolic_entropy(beta, 0.3)
    null = np.linalg.svd(X)[2][10:]  # interpolators are beta + null-space directions
    g = np.random.default_rng(0)
    for _ in range(20):
        assert method.hyperbolic_entropy(beta + 0.01 * g.standard_normal(20) @ null, 0.3) > q


def test_small_step_gd_converges_to_the_gradient_flow_limit():
    X, y, *_ = method.sparse_regression(10, 30, 3, 4, seed=0)
    limit = method.gradient_flow_limit(X, y, 0.3)
    errs = []
    for gamma, steps in ((0.04, 10000), (0.01, 40000)):
        u, v = method.gd(X, y, gamma, steps, 0.3)
        assert method.loss(X, y, u * v) < 1e-20
        errs.append(np.abs(u * v - limit).max())
    # an O(gamma) discretisation gap: 1.1e-3 at 0.04, 2.8e-4 at 0.01 (7.1e-5 at 0.0025), 4x per 4x in gamma
    assert errs[1] < 4e-4 and errs[0] / 5 < errs[1] < errs[0] / 3
    least_l2 = np.linalg.lstsq(X, y, rcond=None)[0]
    assert np.abs(least_l2 - limit).max() > 0.05  # the test tells the two implicit biases apart
    assert np.abs(u * v).sum() < np.abs(least_l2).sum()
