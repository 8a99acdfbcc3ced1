"""Subset-Norm AdamW (papers/subset_norm_2024/method.py) against pytorch-optimizer's AdamWSN (groups
with sn=True) step by step, its row partition against the same with chunks of one row, the column
case against the transposed problem, and Subspace-Momentum against its literal equations."""
import math

import pytest
import torch

from optrepro.lowrank import basis, down, up
from optrepro.papers.subset_norm_2024.method import AdamWSN, largest_divisor_at_most, subset_shape
from tests.reference.lockstep import lockstep

import pytorch_optimizer as pto  # a dev dependency: missing, this fails rather than skips

pytestmark = pytest.mark.reference

SHAPES = [(7,), (12, 6), (6, 10), (20, 30), (1,)]


def _groups(params):
    vec = [p for p in params if p.dim() != 2]
    mat = [p for p in params if p.dim() == 2]
    return vec, mat


@pytest.mark.parametrize("k", [-1, 5, 7, -2])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_flat_subsets_equal_pytorch_optimizer(k, wd):
    kw = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)

    def ours(ps):
        vec, mat = _groups(ps)
        return AdamWSN([{"params": vec, "sn": False}, {"params": mat}], subsets=k, **kw)

    def ref(ps):
        vec, mat = _groups(ps)
        return pto.AdamWSN([{"params": vec, "sn": False}, {"params": mat, "sn": True}], subset_size=k, **kw)

    o, r = lockstep(ours, ref, shapes=SHAPES, steps=60)
    # the second moment really is one number per subset
    for p in o.param_groups[1]["params"]:
        _, (count, size) = subset_shape(p.shape, k)
        assert o.state[p]["exp_avg_sq"].shape == (count, 1) and count * size == p.numel()


def test_row_partition_equals_chunks_of_one_row():
    """m >= n: the paper's partition (one value per row) is pytorch-optimizer's with subset_size n."""
    shapes = [(12, 6), (20, 5)]
    kw = dict(lr=1e-2, betas=(0.9, 0.999), weight_decay=0.05)
    lockstep(lambda ps: AdamWSN(ps, subsets="rows", **kw),
             lambda ps: pto.AdamWSN([{"params": [ps[0]], "sn": True, "subset_size": 6},
                                     {"params": [ps[1]], "sn": True, "subset_size": 5}], **kw),
             shapes=shapes, steps=60)


def test_columns_when_wider_than_tall():
    """m < n: one value per column, i.e. the row partition of the transposed problem."""
    torch.manual_seed(0)
    w = torch.randn(4, 9, dtype=torch.float64)
    a, b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.T.clone())
    oa, ob = AdamWSN([a], lr=1e-2, subsets="rows"), AdamWSN([b], lr=1e-2, subsets="rows")
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        grad = torch.randn(4, 9, generator=g, dtype=torch.float64)
        a.grad, b.grad = grad.clone(), grad.T.clone()
        oa.step()
        ob.step()
    assert oa.state[a]["exp_avg_sq"].shape == (1, 9)
    torch.testing.assert_close(a.detach(), b.detach().T, rtol=1e-12, atol=1e-14)


def test_subspace_momentum_literal():
    """Two steps by hand (rank 2, refresh every step 0 only), then a refresh resets the moment."""
    torch.manual_seed(0)
    w0 = torch.randn(8, 5, dtype=torch.float64)
    p = torch.nn.Parameter(w0.clone())
    b1, b2, eps, lr = 0.9, 0.99, 1e-8, 1e-2
    opt = AdamWSN([p], lr=lr, betas=(b1, b2), eps=eps, subsets="rows", rank=2, update_proj_gap=3)
    g = torch.Generator().manual_seed(2)
    grads = [torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(4)]
    B = basis(grads[0], 2, "svd", right=True)
    w, m, v = w0.clone(), torch.zeros(8, 2, dtype=torch.float64), torch.zeros(8, 1, dtype=torch.float64)
    for t, G in enumerate(grads[:3], start=1):
        p.grad = G.clone()
        opt.step()
        r = down(G, B, True)
        m = b1 * m + (1 - b1) * r
        v = b2 * v + (1 - b2) * (G * G).sum(1, keepdim=True)
        num = up(m, B, True) + (G - up(r, B, True))
        w = w - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * num / (v.sqrt() + eps)
        torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-14)
    assert opt.state[p]["exp_avg"].shape == (8, 2)  # rank x side: the momentum's memory
    p.grad = grads[3].clone()
    opt.step()  # step index 3: a new basis from this gradient, the moment restarted from zero
    B2 = basis(grads[3], 2, "svd", right=True)
    torch.testing.assert_close(opt.state[p]["basis"], B2)
    torch.testing.assert_close(opt.state[p]["exp_avg"], (1 - b1) * down(grads[3], B2, True))


def test_divisors_and_arguments():
    assert largest_divisor_at_most(16384, 128) == 128 and largest_divisor_at_most(97, 9) == 1
    assert largest_divisor_at_most(30, 7) == 6
    for bad in (dict(subsets=0), dict(subsets="cols"), dict(rank=-1), dict(update_proj_gap=0), dict(proj="qr"),
                dict(lr=-1.0), dict(betas=(0.9, 1.0))):
        with pytest.raises(ValueError):
            AdamWSN([torch.nn.Parameter(torch.zeros(3, 3))], **bad)
