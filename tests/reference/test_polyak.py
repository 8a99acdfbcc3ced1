"""The preconditioned Polyak steps (common.optim.polyak: SPS, PSPS, SANIA's diagonal members) against
the update written out with the logistic loss's closed-form gradient and Hessian, the projection
property of the step, and SANIA's scale invariance (exact with eps = 0, not for the square-root
preconditioners). The logistic-regression task (common.tasks.logreg) is checked for its data."""
import math

import numpy as np
import pytest
import torch

from optrepro.optim.polyak import PRECONDITIONERS, PreconditionedPolyak
from optrepro.tasks import logreg

pytestmark = pytest.mark.reference


def _problem(n=24, d=5, seed=0, scales=None):
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, d))
    if scales is not None:
        X = X * scales
    y = np.where(g.standard_normal(n) > 0, 1.0, -1.0)
    return torch.tensor(X), torch.tensor(y)


def _closed_form(w, X, y):
    """Loss, gradient and Hessian of mean log(1 + exp(-y x.w)), by hand."""
    m = y * (X @ w)
    s = 1 / (1 + np.exp(m))  # sigma(-m)
    f = np.mean(np.log1p(np.exp(-m)))
    g = -(X * (y * s)[:, None]).mean(0)
    H = (X.T * (s * (1 - s))) @ X / len(X)
    return f, g, H


def _step(opt, w, X, y):
    return opt.step(lambda: logreg.logistic_loss(w, X, y))


def test_sps_step_is_the_written_out_update():
    X, y = _problem()
    w0 = np.array([0.3, -0.2, 0.1, 0.0, 0.5])
    w = torch.tensor(w0.copy(), requires_grad=True)
    _step(PreconditionedPolyak([w], precond="identity"), w, X, y)
    f, g, _ = _closed_form(w0, X.numpy(), y.numpy())
    np.testing.assert_allclose(w.detach().numpy(), w0 - f / (g @ g) * g, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("precond", ["adam", "adagrad", "adam_sqr", "adagrad_sqr"])
def test_two_adaptive_steps_are_the_written_out_update(precond):
    X, y = _problem(seed=1)
    beta, eps = 0.9, 1e-3
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = PreconditionedPolyak([w], precond=precond, beta=beta, eps=eps)
    ref, v = np.zeros(5), np.zeros(5)
    for t in (1, 2):
        rows = slice(0, 12) if t == 1 else slice(12, 24)
        _step(opt, w, X[rows], y[rows])
        f, g, _ = _closed_form(ref, X[rows].numpy(), y[rows].numpy())
        if precond.startswith("adagrad"):
            v = v + g * g
            m = v
        else:
            v = beta * v + (1 - beta) * g * g
            m = v / (1 - beta ** t)
        D = (m if precond.endswith("_sqr") else np.sqrt(m)) + eps
        ref = ref - f / (g @ (g / D)) * (g / D)
        np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-11, atol=1e-14)


def test_hutchinson_step_uses_z_times_hz_of_the_closed_form_hessian():
    X, y = _problem(seed=2)
    beta, alpha, seed = 0.5, 0.02, 3
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = PreconditionedPolyak([w], precond="hutchinson", beta=beta, alpha=alpha, hutch_init=3, seed=seed)
    _step(opt, w, X, y)
    gen = torch.Generator().manual_seed(seed)
    zs = [(torch.randint(0, 2, (5,), generator=gen, dtype=torch.int64) * 2 - 1).double().numpy() for _ in range(4)]
    f, g, H = _closed_form(np.zeros(5), X.numpy(), y.numpy())
    D0 = np.mean([z * (H @ z) for z in zs[:3]], axis=0)
    D = np.maximum(np.abs(beta * D0 + (1 - beta) * zs[3] * (H @ zs[3])), alpha)
    np.testing.assert_allclose(w.detach().numpy(), -f / (g @ (g / D)) * (g / D), rtol=1e-11, atol=1e-14)


def test_hutchinson_probe_is_unbiased_for_the_hessian_diagonal():
    X, y = _problem(n=40, d=4, seed=4)
    w = torch.tensor([0.2, -0.1, 0.4, 0.3], dtype=torch.float64, requires_grad=True)
    opt = PreconditionedPolyak([w], precond="hutchinson", seed=0)
    grads = torch.autograd.grad(logreg.logistic_loss(w, X, y), [w], create_graph=True)
    est = torch.stack([opt._hutch_sample([w], grads)[0] for _ in range(4000)]).mean(0)
    _, _, H = _closed_form(w.detach().numpy(), X.numpy(), y.numpy())
    off = np.abs(H - np.diag(np.diag(H))).sum(1)
    # z_i (Hz)_i = H_ii + sum_{j != i} H_ij z_i z_j: the error's sd is ||H_i,-i|| / sqrt(4000)
    np.testing.assert_allclose(est.numpy(), np.diag(H), atol=float(5 * off.max() / math.sqrt(4000)) + 1e-12)


@pytest.mark.parametrize("precond", PRECONDITIONERS)
def test_the_step_lands_on_the_zero_set_of_the_linearised_loss(precond):
    """With lr = 1 and no cap, f(w) + <g, w+ - w> = f_star (the step is a projection onto that set)."""
    X, y = _problem(seed=5)
    w0 = torch.tensor([0.1, 0.2, -0.3, 0.4, 0.0], dtype=torch.float64)
    for f_star in (0.0, 0.1):
        w = w0.clone().requires_grad_(True)
        opt = PreconditionedPolyak([w], precond=precond, f_star=f_star, eps=1e-6)
        f, g, _ = _closed_form(w0.numpy(), X.numpy(), y.numpy())
        _step(opt, w, X, y)
        assert f + g @ (w.detach().numpy() - w0.numpy()) == pytest.approx(f_star, abs=1e-12)


def test_lr_scales_and_max_step_caps_gamma():
    X, y = _problem(seed=6)
    moves = {}
    for kw in ({}, {"lr": 0.5}, {"max_step": 1e-3}):
        w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
        opt = PreconditionedPolyak([w], **kw)
        _step(opt, w, X, y)
        moves[tuple(kw)] = (w.detach().numpy(), opt.last["gamma"])
    full, gamma = moves[()]
    np.testing.assert_allclose(moves[("lr",)][0], 0.5 * full, rtol=1e-12)
    assert gamma > 1e-3 and moves[("max_step",)][1] == 1e-3
    np.testing.assert_allclose(moves[("max_step",)][0], full * 1e-3 / gamma, rtol=1e-12)


def test_several_parameters_take_one_joint_step():
    """The loss and ||g||^2_{D^-1} are global: splitting w into two tensors (two groups) changes nothing."""
    X, y = _problem(seed=7)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    o1 = PreconditionedPolyak([w], precond="adam")
    o2 = PreconditionedPolyak([{"params": [a]}, {"params": [b]}], precond="adam")
    for t in range(4):
        rows = slice(6 * t, 6 * t + 6)
        _step(o1, w, X[rows], y[rows])
        o2.step(lambda: logreg.logistic_loss(torch.cat([a, b]), X[rows], y[rows]))
    np.testing.assert_allclose(torch.cat([a, b]).detach().numpy(), w.detach().numpy(), rtol=1e-13, atol=1e-15)


def _trajectory(precond, scales, eps, steps=30):
    X, y = _problem(n=60, d=6, seed=8, scales=scales)
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = PreconditionedPolyak([w], precond=precond, eps=eps)
    losses = []
    for t in range(steps):
        rows = slice((10 * t) % 60, (10 * t) % 60 + 10)
        losses.append(float(_step(opt, w, X[rows], y[rows])))
    return np.array(losses), w.detach().numpy()


@pytest.mark.parametrize("precond", ["adagrad_sqr", "adam_sqr"])
def test_sania_sqr_iterates_are_invariant_to_rescaling_the_features(precond):
    """Features x -> V x (V diagonal) give iterates w -> V^-1 w and the same losses, exactly (eps = 0)."""
    V = 10.0 ** np.array([-3.0, -1.5, 0.0, 1.0, 2.0, 3.0])
    l1, w1 = _trajectory(precond, None, 0.0)
    l2, w2 = _trajectory(precond, V, 0.0)
    np.testing.assert_allclose(l2, l1, rtol=1e-9)
    np.testing.assert_allclose(w2 * V, w1, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("precond", ["identity", "adam", "adagrad"])
def test_sps_and_square_root_preconditioners_are_not_scale_invariant(precond):
    V = 10.0 ** np.array([-3.0, -1.5, 0.0, 1.0, 2.0, 3.0])
    l1, _ = _trajectory(precond, None, 0.0)
    l2, _ = _trajectory(precond, V, 0.0)
    assert np.max(np.abs(np.log10(l2) - np.log10(l1))) > 0.1


def test_bad_arguments_raise_clear_errors():
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="precond"):
        PreconditionedPolyak([w], precond="newton")
    for kw, name in (({"lr": -1.0}, "lr"), ({"beta": 1.0}, "beta"), ({"max_step": 0.0}, "max_step"),
                     ({"eps": -1.0}, "eps"), ({"hutch_init": 0}, "hutch_init"), ({"f_star": math.nan}, "f_star")):
        with pytest.raises(ValueError, match=name):
            PreconditionedPolyak([w], **kw)
    with pytest.raises(TypeError, match="closure"):
        PreconditionedPolyak([w]).step()


def test_column_scales_and_standardization():
    V = logreg.column_scales(30, 3.0, seed=1)
    assert V.min() >= 1e-3 and V.max() <= 1e3 and np.log10(V).std() > 1
    assert np.array_equal(logreg.column_scales(4, 0.0, 1), np.ones(4))
    cfg = logreg.LogRegConfig(dataset="breast_cancer", seed=2)
    xtr, ytr, xte, yte, _ = logreg.load(cfg)
    np.testing.assert_allclose(xtr.mean(0).numpy(), 0, atol=1e-12)
    np.testing.assert_allclose(xtr.std(0, unbiased=False).numpy(), 1, rtol=1e-12)
    assert set(ytr.unique().tolist()) == {-1.0, 1.0} and len(xte) == round(569 * 0.25)
    scaled, *_ , V2 = logreg.load(logreg.LogRegConfig(dataset="breast_cancer", seed=2, scale_exp=3.0))
    np.testing.assert_allclose(scaled.numpy(), xtr.numpy() * V2, rtol=1e-12)
