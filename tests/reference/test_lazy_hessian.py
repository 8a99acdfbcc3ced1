"""lazy_hessian_2022: Newton with lazy Hessians against the step written out with the closed-form
logistic Hessian (fresh and stale), the regularized step against a direct linear solve, the Newton
limit on a quadratic, and the cost count (gradients + d per Hessian)."""
import math

import numpy as np
import pytest
import torch

from optrepro.curvature import cubic_step
from optrepro.papers.lazy_hessian_2022 import experiment as ex
from optrepro.papers.lazy_hessian_2022.method import LazyNewton
from tests.conftest import StubCtx

pytestmark = pytest.mark.reference

MU = 1e-2


def _data(n=60, d=5, seed=0):
    g = np.random.default_rng(seed)
    return torch.tensor(g.standard_normal((n, d))), torch.tensor(np.where(g.standard_normal(n) > 0, 1.0, -1.0))


def _f(w, X, y):
    return torch.nn.functional.softplus(-y * (X @ w)).mean() + 0.5 * MU * (w * w).sum()


def _grad_hess(w, X, y):
    """Closed form: g = -X'(y s)/n + mu w, H = X' diag(s(1-s)) X / n + mu I, s = sigma(-y x.w)."""
    w, X, y = w.numpy(), X.numpy(), y.numpy()
    s = 1 / (1 + np.exp(y * (X @ w)))
    g = -(X * (y * s)[:, None]).mean(0) + MU * w
    H = (X.T * (s * (1 - s))) @ X / len(X) + MU * np.eye(len(w))
    return g, H


@pytest.mark.parametrize("every", [1, 3])
def test_cubic_steps_use_the_snapshot_hessian(every):
    X, y = _data()
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = LazyNewton([w], M=0.5, every=every)
    H_snap = None
    for t in range(6):
        x_t = w.detach().clone()
        g, H = _grad_hess(x_t, X, y)
        if t % every == 0:
            H_snap = H
        opt.step(lambda: _f(w, X, y))
        h = cubic_step(torch.tensor(g), torch.tensor(H_snap), 0.5)
        torch.testing.assert_close(w.detach(), x_t + h, rtol=1e-10, atol=1e-12)
    assert opt.n_grad == 6 and opt.n_hess == math.ceil(6 / every) and opt.cost == 6 + 5 * math.ceil(6 / every)


def test_regularized_step_is_a_linear_solve_with_the_stale_hessian():
    X, y = _data(seed=1)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    M = 2.0
    opt = LazyNewton([w], M=M, every=4, form="regularized")
    H_snap = None
    for t in range(5):
        x_t = w.detach().clone()
        g, H = _grad_hess(x_t, X, y)
        if t % 4 == 0:
            H_snap = H
        opt.step(lambda: _f(w, X, y))
        step = -np.linalg.solve(H_snap + math.sqrt(M * np.linalg.norm(g)) * np.eye(5), g)
        np.testing.assert_allclose(w.detach().numpy(), x_t.numpy() + step, rtol=1e-10, atol=1e-12)


def test_small_M_one_step_is_newton_on_a_quadratic():
    g = np.random.default_rng(2)
    Q, _ = np.linalg.qr(g.standard_normal((6, 6)))
    A = torch.tensor((Q * np.geomspace(0.1, 10, 6)) @ Q.T)
    b = torch.tensor(g.standard_normal(6))
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    LazyNewton([w], M=1e-12, every=1).step(lambda: 0.5 * w @ (A @ w) - b @ w)
    torch.testing.assert_close(w.detach(), torch.linalg.solve(A, b), rtol=1e-8, atol=1e-9)


def test_lazy_run_counts_and_converges():
    cfg = ex.LazyConfig(dataset="breast_cancer", every_dims=1.0, M=0.1, tol=1e-8)
    out = ex.run(cfg, StubCtx())
    assert out["reached"] == 1.0 and out["log10_grad"] <= -8
    assert out["cost"] == out["iters"] + 30 * out["hessians"]
    assert out["hessians"] == math.ceil(out["iters"] / 30)


@pytest.mark.parametrize("kw,match", [(dict(M=0.0), "M must"), (dict(every=0), "k must"), (dict(form="x"), "form")])
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        LazyNewton([torch.zeros(3, requires_grad=True)], **kw)


def test_needs_one_flat_tensor_and_a_closure():
    with pytest.raises(ValueError, match="flat"):
        LazyNewton([torch.zeros(2, 2, requires_grad=True)])
    with pytest.raises(TypeError, match="closure"):
        LazyNewton([torch.zeros(2, requires_grad=True)]).step()
