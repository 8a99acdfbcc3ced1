"""egn_2024: the EGN direction against the dense Levenberg-Marquardt solve built from common.curvature's
Gauss-Newton vector products and autograd's gradient; r and Q against autograd's gradient and Hessian
of the summed loss in the outputs; the step and its momentum; bad input."""
import pytest
import torch
from torch import nn
from torch.func import functional_call

from optrepro.curvature import ggn_vp
from optrepro.papers.egn_2024 import method

pytestmark = pytest.mark.reference


def _model(c):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, c)).double()


def _batch(loss, b=5, c=3):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 4, generator=g, dtype=torch.float64)
    y = torch.randn(b, 1, generator=g, dtype=torch.float64) if loss == "mse" else torch.randint(0, c, (b,), generator=g)
    return x, y


@pytest.mark.parametrize("loss,c", [("mse", 1), ("ce", 3)])
def test_r_and_Q_are_the_loss_derivatives_in_the_outputs(loss, c):
    x, y = _batch(loss, c=c)
    f = _model(c)(x).detach()
    r, Q = method.residual_and_hessian(f, y, loss)
    summed = lambda out: method.mean_loss(out.view(f.shape), y, loss) * f.shape[0]  # noqa: E731
    fr = f.reshape(-1).clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(summed(fr), [fr])
    torch.testing.assert_close(r, gr, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(Q, torch.autograd.functional.hessian(summed, f.reshape(-1)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss,c", [("mse", 1), ("ce", 3)])
def test_direction_is_the_dense_levenberg_marquardt_solve(loss, c):
    model = _model(c)
    x, y = _batch(loss, c=c)
    lam = 0.3
    opt = method.EGN(model, loss, lam=lam)
    d, _ = opt.direction(x, y)
    names = opt.names
    ps = dict(model.named_parameters())
    shapes, sizes = [ps[n].shape for n in names], [ps[n].numel() for n in names]
    theta = torch.cat([ps[n].detach().reshape(-1) for n in names])

    def out(t):
        return functional_call(model, {n: v.view(s) for n, v, s in zip(names, torch.split(t, sizes), shapes)}, (x,)).reshape(-1)

    def mean_loss(o):
        return method.mean_loss(o.view(len(x), c), y, loss)

    p = theta.numel()
    G = torch.stack([ggn_vp(out, mean_loss, theta, e) for e in torch.eye(p, dtype=torch.float64)], 1)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(mean_loss(out(t)), [t])
    dense = -torch.linalg.solve(G + lam * torch.eye(p, dtype=torch.float64), g)
    torch.testing.assert_close(d, dense, rtol=1e-9, atol=1e-11)


def test_step_moves_by_lr_times_the_momentum_buffer():
    model = _model(1)
    x, y = _batch("mse")
    opt = method.EGN(model, "mse", lr=0.5, lam=1.0, momentum=0.5)
    before = opt._flat_params().clone()
    d1, _ = opt.direction(x, y)
    opt.step(x, y)
    torch.testing.assert_close(opt._flat_params(), before + 0.5 * d1, rtol=1e-12, atol=1e-14)
    mid = opt._flat_params().clone()
    d2, _ = opt.direction(x, y)
    opt.step(x, y)
    torch.testing.assert_close(opt._flat_params(), mid + 0.5 * (0.5 * d1 + d2), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw,match", [(dict(loss="hinge"), "loss"), (dict(lam=0.0), "lam"), (dict(lr=-1.0), "lr"),
                                      (dict(momentum=1.0), "momentum")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        method.EGN(_model(1), **kw)
