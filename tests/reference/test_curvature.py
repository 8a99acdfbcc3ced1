"""common.curvature against closed forms: Hessians of a quadratic and of logistic regression,
Gauss-Newton matrices of linear least squares and softmax regression, scipy's fractional matrix
powers, the cubic-regularized step's optimality conditions and a direct minimization of its model."""
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

from optrepro import curvature as cv

pytestmark = pytest.mark.reference


def _spd(n, seed, cond=10.0):
    g = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(g.standard_normal((n, n)))
    return torch.tensor((Q * np.geomspace(1, cond, n)) @ Q.T)


def _logistic(n=30, d=4, seed=0):
    g = np.random.default_rng(seed)
    X, y = torch.tensor(g.standard_normal((n, d))), torch.tensor(np.where(g.random(n) > 0.5, 1.0, -1.0))
    w = torch.tensor(g.standard_normal(d))
    s = torch.sigmoid(-y * (X @ w))
    H = (X.T * (s * (1 - s))) @ X / n  # closed form
    return X, y, w, H


def _loss(w, X, y):
    return torch.nn.functional.softplus(-y * (X @ w)).mean()


def test_hvp_both_ways_equals_the_closed_form_hessian():
    A = _spd(5, 0)
    x = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    v = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    quad = lambda t: 0.5 * t @ A @ t + t.sum()  # noqa: E731
    torch.testing.assert_close(cv.hvp(quad(x), [x], [v])[0], A @ v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cv.hvp_fwd(quad, x.detach(), v), A @ v, rtol=1e-12, atol=1e-12)
    X, y, w, H = _logistic()
    w = w.clone().requires_grad_(True)
    u = torch.ones(4, dtype=torch.float64)
    torch.testing.assert_close(cv.hvp(_loss(w, X, y), [w], [u])[0], H @ u, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(cv.hvp_fwd(lambda t: _loss(t, X, y), w.detach(), u), H @ u, rtol=1e-12, atol=1e-13)


def test_hvp_over_several_tensors_is_the_block_hessian():
    A = _spd(5, 3)
    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    t = torch.cat([a, b])
    v = [torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 0.0, 3.0], dtype=torch.float64)]
    out = cv.hvp(0.5 * t @ A @ t, [a, b], v)
    torch.testing.assert_close(torch.cat(out), A @ torch.cat(v), rtol=1e-12, atol=1e-12)


def test_rademacher_probe_is_pm_one():
    z = cv.rademacher(torch.zeros(1000, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert set(z.unique().tolist()) == {-1.0, 1.0} and abs(float(z.mean())) < 0.1


def test_hutchinson_is_exact_for_a_diagonal_and_unbiased_otherwise():
    D = torch.diag(torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64))
    hv = lambda zs: [D @ zs[0]]  # noqa: E731
    like = [torch.zeros(3, dtype=torch.float64)]
    torch.testing.assert_close(cv.hutchinson_diag(hv, like, 1, torch.Generator().manual_seed(0))[0], torch.diag(D))
    A = _spd(6, 4, cond=5.0)
    hv = lambda zs: [A @ zs[0]]  # noqa: E731
    like = [torch.zeros(6, dtype=torch.float64)]
    n = 20000
    est = cv.hutchinson_diag(hv, like, n, torch.Generator().manual_seed(1))[0]
    off = (A - torch.diag(torch.diag(A))).norm(dim=1)  # the estimate's standard deviation per entry, times sqrt(n)
    assert bool(((est - torch.diag(A)).abs() <= 5 * off / math.sqrt(n)).all())
    tr = cv.hutchinson_trace(hv, like, n, torch.Generator().manual_seed(2))
    sd = math.sqrt(2 * float((A * A).sum() - (torch.diag(A) ** 2).sum()) / n)  # Var(z^T A z) = 2 sum_{i!=j} A_ij^2
    assert abs(tr - float(torch.trace(A))) <= 5 * sd


def test_ggn_of_least_squares_and_softmax_regression():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(20, 3, dtype=torch.float64, generator=g)
    Y = torch.randn(20, 2, dtype=torch.float64, generator=g)
    v = torch.randn(6, dtype=torch.float64, generator=g)
    w = torch.randn(6, dtype=torch.float64, generator=g)
    model = lambda t: X @ t.reshape(3, 2)  # noqa: E731
    mse = lambda out: 0.5 * ((out - Y) ** 2).sum() / len(X)  # noqa: E731
    # least squares: G = J^T J / n, the exact Hessian
    J = torch.kron(X, torch.eye(2, dtype=torch.float64))  # d vec(X W) / d vec(W), row-major vec
    torch.testing.assert_close(cv.ggn_vp(model, mse, w, v), J.T @ J @ v / len(X), rtol=1e-12, atol=1e-12)
    # softmax cross-entropy: G = sum_i J_i^T (diag(p_i) - p_i p_i^T) J_i / n
    labels = torch.randint(0, 2, (20,), generator=g)
    ce = lambda out: torch.nn.functional.cross_entropy(out, labels)  # noqa: E731
    P = torch.softmax(model(w), 1)
    G = torch.zeros(6, 6, dtype=torch.float64)
    for i in range(20):
        Ji = torch.kron(X[i:i + 1], torch.eye(2, dtype=torch.float64))
        G += Ji.T @ (torch.diag(P[i]) - torch.outer(P[i], P[i])) @ Ji / 20
    torch.testing.assert_close(cv.ggn_vp(model, ce, w, v), G @ v, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("p", [-0.25, -0.5, 0.5, 2.0])
def test_sym_power_equals_scipy(p):
    A = _spd(6, 6, cond=100.0)
    ref = scipy.linalg.fractional_matrix_power(A.numpy() + 1e-3 * np.eye(6), p).real
    np.testing.assert_allclose(cv.sym_power(A, p, damping=1e-3).numpy(), ref, rtol=1e-9, atol=1e-12)


def test_sym_power_of_a_singular_matrix_needs_damping():
    A = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="damping"):
        cv.sym_power(A, -0.5)
    torch.testing.assert_close(cv.sym_power(A, -0.5, floor=1e-4), torch.diag(torch.tensor([1.0, 100.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="square"):
        cv.sym_power(torch.zeros(2, 3), 0.5)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_coupled_newton_inverse_root_equals_scipy(p):
    A = _spd(6, 7, cond=50.0)
    X, iters = cv.inverse_root_newton(A, p, tol=1e-13, damping=1e-6)
    ref = scipy.linalg.fractional_matrix_power(A.numpy() + 1e-6 * np.eye(6), -1.0 / p).real
    np.testing.assert_allclose(X.numpy(), ref, rtol=1e-8, atol=1e-10)
    assert iters < 100
    with pytest.raises(ValueError, match="p must be"):
        cv.inverse_root_newton(A, 0)


def _cubic_model(h, g, H, M):
    return g @ h + 0.5 * h @ H @ h + M / 6 * np.linalg.norm(h) ** 3


@pytest.mark.parametrize("indefinite", [False, True])
def test_cubic_step_meets_its_optimality_conditions_and_beats_a_direct_minimizer(indefinite):
    rng = np.random.default_rng(8)
    H = _spd(5, 9, cond=20.0).numpy()
    if indefinite:
        H = H - 3.0 * np.eye(5)
    g, M = rng.standard_normal(5), 2.0
    h = cv.cubic_step(torch.tensor(g), torch.tensor(H), M).numpy()
    r = np.linalg.norm(h)
    # (H + M r / 2 I) h = -g and H + M r / 2 I is PSD (the global minimizer's conditions)
    np.testing.assert_allclose((H + M * r / 2 * np.eye(5)) @ h, -g, rtol=1e-9, atol=1e-10)
    assert np.linalg.eigvalsh(H + M * r / 2 * np.eye(5)).min() >= -1e-10
    best = min((scipy.optimize.minimize(_cubic_model, x0, args=(g, H, M), method="BFGS", tol=1e-12)
                for x0 in [np.zeros(5), -g, g, rng.standard_normal(5)]), key=lambda res: res.fun)
    assert _cubic_model(h, g, H, M) <= best.fun + 1e-10


def test_cubic_step_reuses_an_eigendecomposition_and_handles_a_zero_gradient():
    H = _spd(4, 10)
    g = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    eig = torch.linalg.eigh(H)
    torch.testing.assert_close(cv.cubic_step(g, H, 1.0, eig=eig), cv.cubic_step(g, H, 1.0))
    assert float(cv.cubic_step(torch.zeros(4, dtype=torch.float64), H, 1.0).abs().max()) == 0.0
    with pytest.raises(ValueError, match="M"):
        cv.cubic_step(g, H, 0.0)


def test_lazy_recomputes_every_k_calls():
    lazy, calls = cv.Lazy(3), []
    values = [lazy.get(lambda: calls.append(1) or len(calls)) for _ in range(7)]
    assert values == [1, 1, 1, 2, 2, 2, 3] and lazy.count == 3
    other = cv.Lazy(1)
    other.load_state_dict(lazy.state_dict())
    assert other.get(lambda: 99) == 3 and other.count == 3  # call 8 of a k=3 schedule reuses
    with pytest.raises(ValueError, match="k must"):
        cv.Lazy(0)


def test_gn_direction_equals_the_dense_levenberg_marquardt_solve():
    """Duncan-Guttman: -J'(QJJ' + b lam I)^-1 r equals -(J'QJ/b + lam I)^-1 J'r/b, with a block-diagonal
    softmax Q (singular blocks) and more parameters than outputs."""
    g = np.random.default_rng(11)
    b, c, p, lam = 3, 4, 20, 0.05
    J = torch.tensor(g.standard_normal((b * c, p)))
    blocks = []
    for _ in range(b):
        z = g.standard_normal(c)
        pr = np.exp(z) / np.exp(z).sum()
        blocks.append(np.diag(pr) - np.outer(pr, pr))
    Q = torch.tensor(scipy.linalg.block_diag(*blocks))
    r = torch.tensor(g.standard_normal(b * c))
    dense = -torch.linalg.solve(J.T @ Q @ J / b + lam * torch.eye(p, dtype=torch.float64), J.T @ r / b)
    torch.testing.assert_close(cv.gn_direction(J, Q, r, lam, b), dense, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="lam"):
        cv.gn_direction(J, Q, r, 0.0, b)
