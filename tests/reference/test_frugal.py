"""FRUGAL (common.lowrank.FrugalAdamW) against its literal equations, step by step:
- a matrix: AdamW on the projected gradient (moments in the subspace, bias correction from the last
  refresh) plus signSGD on the residual, the subspace refreshed and the moments reset every T steps;
- density 0: signSGD on every matrix; vectors: plain AdamW (equal to torch.optim.AdamW);
- the state-full and state-free parts together see the whole gradient (up(down(G)) + residual = G),
  and free='none' leaves GaLore's update without its scale (the low-rank baseline)."""
import math

import pytest
import torch

from optrepro.lowrank import FrugalAdamW, basis, down, up

pytestmark = pytest.mark.reference

KW = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)


def _grads(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(n)]


@pytest.mark.parametrize("proj", ["svd", "columns", "random"])
def test_matrix_step_is_the_literal_split(proj):
    shape, gap, density, steps = (12, 8), 3, 0.25, 7
    W0 = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    p = torch.nn.Parameter(W0.clone())
    opt = FrugalAdamW([p], density=density, update_gap=gap, proj=proj, seed=5, **KW)
    W = W0.clone()
    rank, right = int(density * 8), True
    b1, b2 = KW["betas"]
    for t, G in enumerate(_grads(shape, steps)):
        p.grad = G.clone()
        opt.step()
        if t % gap == 0:
            B = basis(G, rank, proj, right, seed=(5 * 1_000_003 + 0) * 1_000_003 + t)
            m, v, k = torch.zeros(12, rank, dtype=G.dtype), torch.zeros(12, rank, dtype=G.dtype), 0
        W = W * (1 - KW["lr"] * KW["weight_decay"])
        R = down(G, B, right)
        k += 1
        m = b1 * m + (1 - b1) * R
        v = b2 * v + (1 - b2) * R * R
        adam = (m / (1 - b1 ** k)) / ((v / (1 - b2 ** k)).sqrt() + KW["eps"])
        W = W - KW["lr"] * up(adam, B, right) - KW["lr"] * torch.sign(G - up(R, B, right))
        torch.testing.assert_close(p.detach(), W, rtol=1e-12, atol=1e-12)


def test_density_zero_is_signsgd_and_vectors_are_adamw():
    w = torch.nn.Parameter(torch.randn(6, 5, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    b_ref = torch.nn.Parameter(b.detach().clone())
    opt = FrugalAdamW([w, b], density=0.0, **KW)
    ref = torch.optim.AdamW([b_ref], **KW)
    W = w.detach().clone()
    for G, g in zip(_grads((6, 5), 4), _grads((5,), 4, seed=1)):
        w.grad, b.grad, b_ref.grad = G.clone(), g.clone(), g.clone()
        opt.step()
        ref.step()
        W = W * (1 - KW["lr"] * KW["weight_decay"]) - KW["lr"] * G.sign()
        torch.testing.assert_close(w.detach(), W, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b.detach(), b_ref.detach(), rtol=1e-10, atol=1e-12)
    assert set(opt.state[w]) == {"step"}  # no state for a state-free matrix


def test_split_covers_the_whole_gradient_and_free_none_is_the_low_rank_step():
    G = _grads((10, 6), 1)[0]
    B = basis(G, 2, "svd", True)
    low = up(down(G, B, True), B, True)
    torch.testing.assert_close(low + (G - low), G)
    p = torch.nn.Parameter(torch.zeros(10, 6, dtype=torch.float64))
    opt = FrugalAdamW([p], lr=1.0, betas=(0.0, 0.0), eps=0.0, density=2 / 6, free="none")
    p.grad = G.clone()
    opt.step()
    R = down(G, B, True)
    torch.testing.assert_close(p.detach(), -up(R / R.abs(), B, True))  # Adam with no memory: sign in the subspace


@pytest.mark.parametrize("kw", [dict(density=1.0), dict(density=-0.1), dict(proj="qr"), dict(free="lion"),
                                dict(update_gap=0)])
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError):
        FrugalAdamW([torch.nn.Parameter(torch.zeros(3, 3))], **kw)
