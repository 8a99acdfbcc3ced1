"""The Polyak step for momentum methods (common.optim.polyak.PolyakMomentum; gps_2024) against the
updates written out with the logistic loss's closed-form gradient, its reduction to SPS at beta = 0,
the heavy-ball step's defining property (it minimizes the convexity bound on the next distance to a
minimizer, checked on a quadratic with known x*), and torch's heavy ball at the same step sizes."""
import math

import numpy as np
import pytest
import torch

from optrepro.optim.polyak import PolyakMomentum, PreconditionedPolyak
from optrepro.papers.gps_2024 import experiment as gps
from optrepro.tasks import logreg

pytestmark = pytest.mark.reference


def _problem(n=40, d=6, seed=0):
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, d))
    y = np.where(g.standard_normal(n) > 0, 1.0, -1.0)
    return torch.tensor(X), torch.tensor(y)


def _f_g(w, X, y):
    """Loss and gradient of mean log(1 + exp(-y x.w)), by hand."""
    m = y * (X @ w)
    s = 1 / (1 + np.exp(m))
    return np.mean(np.log1p(np.exp(-m))), -(X * (y * s)[:, None]).mean(0)


def _loss(w, X, y):
    """The logistic loss without softplus's linear cut-off above 20 (which is off by up to exp(-20))."""
    return torch.logaddexp(torch.zeros(()), -y * (X @ w)).mean()


def _batches(X, y, k=4):
    n = len(X) // k
    return [(X[i * n:(i + 1) * n], y[i * n:(i + 1) * n]) for i in range(k)]


@pytest.mark.parametrize("beta,c,max_step,f_star", [(0.9, 1.0, math.inf, 0.0), (0.5, 0.5, math.inf, 0.0),
                                                     (0.99, 2.0, 0.3, 0.05)])
def test_mag_steps_are_the_written_out_update(beta, c, max_step, f_star):
    X, y = _problem()
    w0 = np.array([0.2, -0.1, 0.0, 0.3, -0.4, 0.1])
    w = torch.tensor(w0.copy(), requires_grad=True)
    opt = PolyakMomentum([w], beta=beta, form="mag", c=c, max_step=max_step, f_star=f_star)
    d = np.zeros(6)
    for Xb, yb in _batches(X, y) * 2:  # each step from the optimizer's own iterate (large steps amplify rounding)
        now = w.detach().numpy().copy()
        opt.step(lambda: _loss(w, Xb, yb))
        f, g = _f_g(now, Xb.numpy(), yb.numpy())
        d = beta * d + g
        eta = min(max_step, max(f - f_star, 0.0) / (c * d @ d))
        np.testing.assert_allclose(w.detach().numpy(), now - eta * d, rtol=1e-12, atol=1e-12)
        assert opt.last["eta"] == pytest.approx(eta, rel=1e-12)


def test_hb_steps_are_the_written_out_update():
    X, y = _problem(seed=1)
    beta = 0.8
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = PolyakMomentum([w], beta=beta, form="hb")
    prev = np.zeros(6)
    for Xb, yb in _batches(X, y) * 2:
        now = w.detach().numpy().copy()
        opt.step(lambda: _loss(w, Xb, yb))
        f, g = _f_g(now, Xb.numpy(), yb.numpy())
        m = now - prev
        eta = max(0.0, f + beta * g @ m) / (g @ g)
        np.testing.assert_allclose(w.detach().numpy(), now - eta * g + beta * m, rtol=1e-12, atol=1e-12)
        prev = now


@pytest.mark.parametrize("form", ["mag", "hb"])
def test_beta_zero_is_sps(form):
    X, y = _problem(seed=2)
    a = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    pm, sps = PolyakMomentum([a], beta=0.0, form=form), PreconditionedPolyak([b], precond="identity")
    for Xb, yb in _batches(X, y) * 3:
        pm.step(lambda: logreg.logistic_loss(a, Xb, yb))
        sps.step(lambda: logreg.logistic_loss(b, Xb, yb))
    torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_hb_step_minimizes_the_convexity_bound_on_a_quadratic():
    """On f = (x - x*)'A(x - x*)/2 the bound ||x_t - x* + beta m||^2 - 2 eta (f - f* + beta <g, m>) + eta^2 ||g||^2
    on ||x_{t+1} - x*||^2 holds at every eta >= 0 and its minimizer is the step the optimizer takes."""
    cfg = gps.QuadraticConfig(dim=8, kappa=50.0, seed=3)
    A, xs, x0 = gps.problem(cfg)
    x = x0.clone().requires_grad_(True)
    beta = 0.7
    opt = PolyakMomentum([x], beta=beta, form="hb")
    f = lambda: 0.5 * (x - xs) @ (A @ (x - xs))  # noqa: E731
    prev = x0.clone()
    for t in range(6):
        xt = x.detach().clone()
        g = A @ (xt - xs)
        m = xt - prev
        ft = float(0.5 * (xt - xs) @ (A @ (xt - xs)))
        a0 = float(((xt - xs + beta * m) ** 2).sum())
        lin = ft + beta * float(g @ m)
        bound = lambda e: a0 - 2 * e * lin + e * e * float(g @ g)  # noqa: E731
        exact = lambda e: float(((xt - e * g + beta * m - xs) ** 2).sum())  # noqa: E731
        for e in np.linspace(0, 3, 13):
            assert exact(e) <= bound(e) + 1e-10
        opt.step(f)
        eta = opt.last["eta"]
        assert eta == pytest.approx(max(lin, 0) / float(g @ g), rel=1e-12)
        for e in (eta * 0.9, eta * 1.1, eta + 1e-3):
            assert bound(e) >= bound(eta) - 1e-12
        torch.testing.assert_close(x.detach(), xt - eta * g + beta * m, rtol=1e-12, atol=1e-14)
        prev = xt


def test_fixed_heavy_ball_row_is_torch_sgd_momentum_written_out():
    """The quadratic table's hb rows (torch SGD with momentum) are x_{t+1} = x_t - lr g_t + beta (x_t - x_{t-1})."""
    cfg = gps.QuadraticConfig(dim=6, kappa=10.0, seed=1)
    A, xs, x0 = gps.problem(cfg)
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=0.7, momentum=0.9)
    ref, prev = x0.clone(), x0.clone()
    for _ in range(10):
        opt.zero_grad()
        (0.5 * (x - xs) @ (A @ (x - xs))).backward()
        opt.step()
        prev, ref = ref, ref - 0.7 * (A @ (ref - xs)) + 0.9 * (ref - prev)
    torch.testing.assert_close(x.detach(), ref, rtol=1e-12, atol=1e-12)


def test_quadratic_problem_has_the_stated_spectrum():
    A, _, _ = gps.problem(gps.QuadraticConfig(dim=20, kappa=1000.0, seed=0))
    lam = torch.linalg.eigvalsh(A)
    assert float(lam.max()) == pytest.approx(1.0, rel=1e-10)
    assert float(lam.min()) == pytest.approx(1e-3, rel=1e-8)


@pytest.mark.parametrize("kw,match", [(dict(beta=1.0), "beta"), (dict(form="nesterov"), "form"),
                                      (dict(c=0.0), "c must"), (dict(max_step=0.0), "max_step"),
                                      (dict(lr=-1.0), "lr")])
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        PolyakMomentum([torch.zeros(2, requires_grad=True)], **kw)


def test_step_needs_a_closure():
    with pytest.raises(TypeError, match="closure"):
        PolyakMomentum([torch.zeros(2, requires_grad=True)]).step()
