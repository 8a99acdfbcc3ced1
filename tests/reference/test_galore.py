"""GaLore (common.lowrank) against the authors' galore-torch 1.0 AdamW step by step (SVD projection,
both sides, refreshes), and the projectors against their definitions: orthonormal bases, exact
recovery of a gradient of rank <= r, seeded random bases, and a checkpoint that resumes exactly."""
import copy

import pytest
import torch
from torch import nn

from optrepro.lowrank import GaLoreAdamW, basis, down, up

pytestmark = pytest.mark.reference


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 48), nn.Tanh(), nn.Linear(48, 24), nn.Tanh(), nn.Linear(24, 4))


def _loss(model, t):
    g = torch.Generator().manual_seed(t)
    x, y = torch.randn(16, 32, generator=g), torch.randint(0, 4, (16,), generator=g)
    return nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("rank,gap,wd", [(4, 5, 0.0), (8, 7, 0.01)])
def test_equals_galore_torch_adamw(rank, gap, wd):
    import galore_torch  # a dev dependency: a missing install is a failure, not a skip
    ours_m, ref_m = _model(), _model()
    kw = dict(lr=3e-3, betas=(0.9, 0.99), eps=1e-6, weight_decay=wd)
    ours = GaLoreAdamW(ours_m.parameters(), rank=rank, update_proj_gap=gap, scale=0.25, **kw)
    mats = [p for p in ref_m.parameters() if GaLoreAdamW.projected(p, rank)]
    rest = [p for p in ref_m.parameters() if not GaLoreAdamW.projected(p, rank)]
    assert len(mats) == 2 and len(rest) == 4  # (48x32: right side), (24x48: left side); (4x24: too thin), biases
    ref = galore_torch.GaLoreAdamW([{"params": rest}, {"params": mats, "rank": rank, "update_proj_gap": gap,
                                                        "scale": 0.25, "proj_type": "std"}], no_deprecation_warning=True, **kw)
    for t in range(3 * gap + 2):
        for m, opt in ((ours_m, ours), (ref_m, ref)):
            opt.zero_grad()
            _loss(m, t).backward()
            opt.step()
        for a, b in zip(ours_m.parameters(), ref_m.parameters()):
            assert torch.allclose(a, b, rtol=0, atol=1e-6), t


def test_projected_moments_are_low_rank():
    m = _model()
    opt = GaLoreAdamW(m.parameters(), rank=4)
    _loss(m, 0).backward()
    opt.step()
    w1, w2 = m[0].weight, m[2].weight
    assert opt.state[w1]["exp_avg"].shape == (48, 4) and opt.state[w2]["exp_avg"].shape == (4, 48)
    assert opt.state[m[4].weight]["exp_avg"].shape == (4, 24)


@pytest.mark.parametrize("kind", ["svd", "random", "columns"])
@pytest.mark.parametrize("shape", [(40, 12), (12, 40)])
def test_bases_are_orthonormal_and_svd_recovers_low_rank(kind, shape):
    g = torch.Generator().manual_seed(0)
    G = torch.randn(shape[0], 3, generator=g, dtype=torch.float64) @ torch.randn(3, shape[1], generator=g,
                                                                               dtype=torch.float64)
    right = shape[0] >= shape[1]
    B = basis(G, 5, kind, right, seed=1)
    gram = B @ B.T if right else B.T @ B
    assert torch.allclose(gram, torch.eye(5, dtype=G.dtype), atol=1e-12)
    if kind == "svd":  # rank-3 gradient, rank-5 basis: nothing is lost
        assert torch.allclose(up(down(G, B, right), B, right), G, atol=1e-10)
    else:
        assert torch.equal(B, basis(G, 5, kind, right, seed=1)) and not torch.equal(B, basis(G, 5, kind, right, seed=2))


def test_checkpoint_resumes_exactly():
    a, b = _model(1), _model(1)
    oa = GaLoreAdamW(a.parameters(), rank=4, update_proj_gap=3, proj="random")
    for t in range(4):
        oa.zero_grad()
        _loss(a, t).backward()
        oa.step()
    b.load_state_dict(a.state_dict())
    ob = GaLoreAdamW(b.parameters(), rank=4, update_proj_gap=3, proj="random")
    ob.load_state_dict(copy.deepcopy(oa.state_dict()))  # as from disk: torch shares the loaded tensors
    for t in range(4, 9):
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            _loss(m, t).backward()
            o.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="valid: svd, random, columns"):
        GaLoreAdamW(_model().parameters(), proj="x")
    with pytest.raises(ValueError, match="rank"):
        GaLoreAdamW(_model().parameters(), rank=0)
