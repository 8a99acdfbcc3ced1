"""Bootstrapped meta-gradients (common.bilevel.bootstrap) against literal equations: the K-step
meta-gradient against central finite differences, BMG's target against the written-out L steps and
gradient step, the identity BMG(L = 0, L2) = beta x the standard meta-gradient, and the KL matching
loss against its definition."""
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from optrepro.bilevel import bootstrap

pytestmark = pytest.mark.reference
D = torch.float64


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(8, 5, generator=g, dtype=D), torch.randint(0, 3, (8,), generator=g)) for _ in range(6)]
    meta = (torch.randn(16, 5, generator=g, dtype=D), torch.randint(0, 3, (16,), generator=g))

    def loss_fn(w, b):
        return nn.functional.cross_entropy(functional_call(model, w, (b[0],)), b[1])

    w0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    return model, batches, meta, loss_fn, w0


@pytest.mark.parametrize("K", [1, 3])
def test_meta_gradient_matches_finite_differences(K):
    model, batches, meta, loss_fn, w0 = _setup()
    eta = torch.tensor(math.log(0.3), dtype=D, requires_grad=True)
    g, _ = bootstrap.meta_gradient("mg", w0, eta, batches[:K], loss_fn, lambda w: loss_fn(w, meta))

    def F(e):
        w = bootstrap.unroll(w0, torch.tensor(e, dtype=D), batches[:K], loss_fn, graph=False)
        return float(loss_fn(w, meta).detach())
    h = 1e-6
    fd = (F(eta.item() + h) - F(eta.item() - h)) / (2 * h)
    assert float(g) == pytest.approx(fd, rel=1e-6, abs=1e-10)


def test_target_is_L_steps_then_a_meta_gradient_step():
    model, batches, meta, loss_fn, w0 = _setup(1)
    eta = torch.tensor(math.log(0.2), dtype=D)
    beta = 0.7
    t = bootstrap.target(w0, eta, batches[:4], loss_fn, lambda w: loss_fn(w, meta), beta)
    w = {k: v.clone().requires_grad_() for k, v in w0.items()}
    for b in batches[:4]:  # written out: w <- w - 0.2 grad
        gr = torch.autograd.grad(loss_fn(w, b), list(w.values()))
        w = {k: (v - 0.2 * gi).detach().requires_grad_() for (k, v), gi in zip(w.items(), gr)}
    gr = torch.autograd.grad(loss_fn(w, meta), list(w.values()))
    for (k, v), gi in zip(w.items(), gr):
        assert torch.allclose(t[k], v - beta * gi, rtol=0, atol=1e-14)
        assert not t[k].requires_grad


@pytest.mark.parametrize("K,beta", [(1, 1.0), (3, 0.25)])
def test_bmg_without_bootstrap_is_beta_times_the_meta_gradient(K, beta):
    model, batches, meta, loss_fn, w0 = _setup(2)
    eta = torch.tensor(math.log(0.3), dtype=D, requires_grad=True)
    mg, _ = bootstrap.meta_gradient("mg", w0, eta, batches[:K], loss_fn, lambda w: loss_fn(w, meta))
    bmg, _ = bootstrap.meta_gradient("bmg", w0, eta, batches[:K], loss_fn, lambda w: loss_fn(w, meta), (), beta, "l2")
    assert float(bmg) == pytest.approx(beta * float(mg), rel=1e-10)
    # with bootstrap steps the target looks further ahead and the meta-gradient changes
    bmg_L, _ = bootstrap.meta_gradient("bmg", w0, eta, batches[:K], loss_fn, lambda w: loss_fn(w, meta),
                                       batches[K:K + 3], beta, "l2")
    assert abs(float(bmg_L) - beta * float(mg)) > 1e-3 * abs(float(mg))


def test_kl_matching_is_the_kl_of_the_output_distributions():
    model, batches, meta, loss_fn, w0 = _setup(3)
    w1 = {k: v + 0.1 * torch.randn_like(v) for k, v in w0.items()}
    out = lambda w: functional_call(model, w, (meta[0],))  # noqa: E731
    p, q = torch.softmax(out(w1), -1), torch.softmax(out(w0), -1)
    want = (p * (p.log() - q.log())).sum(-1).mean()
    got = bootstrap.matching("kl", w1, w0, out)
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    assert float(bootstrap.matching("kl", w0, w0, out)) == pytest.approx(0.0, abs=1e-15)


def test_bmg_gradient_is_the_matching_direction_through_K_steps():
    """d mu / d eta = -(w^ - w_K) . d w_K / d eta (w^ constant): against finite differences of w_K."""
    model, batches, meta, loss_fn, w0 = _setup(4)
    eta = torch.tensor(math.log(0.3), dtype=D, requires_grad=True)
    K = 2
    g, wK = bootstrap.meta_gradient("bmg", w0, eta, batches[:K], loss_fn, lambda w: loss_fn(w, meta),
                                    batches[K:K + 5], 0.5, "l2")
    t = bootstrap.target(wK, eta.detach(), batches[K:K + 5], loss_fn, lambda w: loss_fn(w, meta), 0.5)
    h = 1e-6
    wp = bootstrap.unroll(w0, eta.detach() + h, batches[:K], loss_fn, graph=False)
    wm = bootstrap.unroll(w0, eta.detach() - h, batches[:K], loss_fn, graph=False)
    want = -sum(float(((t[k] - wK[k]) * (wp[k] - wm[k]).detach() / (2 * h)).sum()) for k in wK)
    assert float(g) == pytest.approx(want, rel=1e-6)


def test_unknown_method_and_matching_are_errors():
    model, batches, meta, loss_fn, w0 = _setup()
    eta = torch.tensor(0.0, dtype=D, requires_grad=True)
    with pytest.raises(ValueError, match="valid: mg, bmg"):
        bootstrap.meta_gradient("x", w0, eta, batches[:1], loss_fn, lambda w: loss_fn(w, meta))
    with pytest.raises(ValueError, match="valid: l2, kl"):
        bootstrap.matching("x", w0, w0)
