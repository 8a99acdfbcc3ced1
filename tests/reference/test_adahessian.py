"""adahessian_2020: AdaHessian against pytorch-optimizer 4.1.0's AdaHessian fed the same Hessian-diagonal
estimates (every step, with and without weight decay, and with the Hessian refreshed every 2 steps),
the estimate against z ⊙ (H z) with the closed-form Hessian, and the spatial average over a
convolution kernel written out; the trainer's create_graph hook; bad input."""
import numpy as np
import pytest
import torch
from pytorch_optimizer import AdaHessian as RefAdaHessian

from optrepro.papers.adahessian_2020.method import AdaHessian
from tests.conftest import StubCtx

pytestmark = pytest.mark.reference


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()


def _batch(t):
    g = torch.Generator().manual_seed(100 + t)
    return torch.randn(16, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)


@pytest.mark.parametrize("wd,every", [(0.0, 1), (1e-2, 1), (0.0, 2)])
def test_steps_equal_pytorch_optimizer_given_the_same_hessian_estimates(wd, every):
    ours_m, ref_m = _model(), _model()
    ours = AdaHessian(ours_m.parameters(), lr=0.05, eps=1e-4, weight_decay=wd, update_every=every)
    ref = RefAdaHessian(ref_m.parameters(), lr=0.05, eps=1e-4, weight_decay=wd, update_period=every,
                        weight_decouple=True, fixed_decay=False, foreach=False)
    for t in range(6):
        x, y = _batch(t)
        for m, opt in ((ours_m, ours), (ref_m, ref)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward(create_graph=True)
        if t % every == 0:
            items = [(g, p, ours.state[p] | {"step": ours.state[p].get("step", 0) + 1}, gi, pi)
                     for gi, g in enumerate(ours.param_groups) for pi, p in enumerate(g["params"])]
            D = [d.detach().clone() for d in ours.hessian_diag(items)]  # the estimates ours will draw
            ours.step()
            ref.step(hessian=D)
        else:
            ours.step()
            ref.step()
        for a, b in zip(ours_m.parameters(), ref_m.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_estimate_is_z_times_hz_with_the_closed_form_hessian():
    g = np.random.default_rng(0)
    X, y = torch.tensor(g.standard_normal((30, 4))), torch.tensor(np.where(g.random(30) > 0.5, 1.0, -1.0))
    w = torch.tensor(g.standard_normal(4), requires_grad=True)
    loss = torch.nn.functional.softplus(-y * (X @ w)).mean()
    (gw,) = torch.autograd.grad(loss, [w], create_graph=True)
    w.grad = gw
    opt = AdaHessian([w])
    st = {"step": 1}
    (D,) = opt.hessian_diag([(opt.param_groups[0], w, st, 0, 0)])
    z = opt._probe(w, 1, 0, 0)
    s = torch.sigmoid(-y * (X @ w.detach()))
    H = (X.T * (s * (1 - s))) @ X / 30
    torch.testing.assert_close(D, (z * (H @ z)).abs(), rtol=1e-12, atol=1e-14)
    assert set(z.tolist()) <= {-1.0, 1.0}


def test_conv_kernels_are_averaged_over_their_spatial_dims():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(2, 3, 3).double()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    for avg in (True, False):
        conv.zero_grad()
        (conv(x) ** 2).mean().backward(create_graph=True)
        opt = AdaHessian(conv.parameters(), spatial_average=avg)
        items = [(opt.param_groups[0], p, {"step": 1}, 0, i) for i, p in enumerate(conv.parameters())]
        Dw, Db = opt.hessian_diag(items)
        hz = torch.autograd.grad([conv.weight.grad, conv.bias.grad], [conv.weight, conv.bias],
                                 grad_outputs=[opt._probe(conv.weight, 1, 0, 0), opt._probe(conv.bias, 1, 0, 1)])
        raw = hz[0].abs()
        want = raw.mean(dim=(2, 3), keepdim=True).expand_as(raw) if avg else raw
        torch.testing.assert_close(Dw, want, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(Db, hz[1].abs(), rtol=1e-12, atol=1e-14)  # 1-D: no averaging


def test_the_shared_trainer_backpropagates_with_create_graph():
    from optrepro.papers.adahessian_2020 import experiment as ex
    cfg = ex.Config(dataset="digits", model="mlp", epochs=1)
    cfg.optim.name, cfg.optim.lr = "adahessian", 0.1
    ex.preflight(cfg)
    out = ex.run(cfg, StubCtx())
    assert out["test_acc"] > 50


def test_without_the_graph_it_says_so():
    m = _model()
    x, y = _batch(0)
    torch.nn.functional.cross_entropy(m(x), y).backward()
    with pytest.raises(RuntimeError, match="create_graph=True"):
        AdaHessian(m.parameters()).step()


@pytest.mark.parametrize("kw,match", [(dict(lr=-1.0), "lr"), (dict(betas=(1.0, 0.9)), "beta"),
                                      (dict(hessian_power=0.0), "hessian_power"), (dict(update_every=0), "update_every"),
                                      (dict(eps=-1.0), "eps")])
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        AdaHessian([torch.zeros(2, requires_grad=True)], **kw)
