"""adafactor_2018: Adafactor against transformers' Adafactor (the closest to the paper) on the same
gradients, every step (relative and absolute step sizes, with and without parameter scaling, first
moment and weight decay; matrices, a 4-D tensor factored over its last two dimensions, vectors); the
factored estimate against its definition (row sums times column sums over the total, exact for a
rank-1 G^2); the state it keeps (sublinear for matrices); bad input."""
import pytest
import torch
from transformers.optimization import Adafactor as RefAdafactor

from optrepro.papers.adafactor_2018.method import Adafactor
from tests.reference.lockstep import SHAPES, lockstep

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("ours_kw,ref_kw", [
    (dict(lr=1e-2), dict(lr=None)),  # the paper's defaults: relative step min(1e-2, 1/sqrt(t)), scaled by RMS
    (dict(lr=0.05, relative_step=False), dict(lr=0.05, relative_step=False)),
    (dict(lr=0.05, relative_step=False, scale_parameter=False, beta1=0.9, weight_decay=0.01),
     dict(lr=0.05, relative_step=False, scale_parameter=False, beta1=0.9, weight_decay=0.01)),
    (dict(lr=1e-2, clip_threshold=0.5, decay_rate=0.5), dict(lr=None, clip_threshold=0.5, decay_rate=-0.5)),
])
def test_steps_equal_transformers_adafactor(ours_kw, ref_kw):
    lockstep(lambda ps: Adafactor(ps, **ours_kw),
             lambda ps: RefAdafactor(ps, **{"relative_step": True, "scale_parameter": True, "warmup_init": False, **ref_kw}),
             shapes=SHAPES, steps=40, atol=1e-10, rtol=1e-9)


def test_factored_estimate_is_exact_for_a_rank_one_square():
    # one step with beta2_1 = 0: V = R C / sum(R) equals G^2 when G^2 = a b' (here G = sqrt(a) sqrt(b)')
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0], dtype=torch.float64)
    G = torch.outer(a.sqrt(), b.sqrt())
    p = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    p.grad = G.clone()
    opt = Adafactor([p], lr=0.1, relative_step=False, scale_parameter=False, eps1=0.0, clip_threshold=1e9)
    opt.step()
    st = opt.state[p]
    V = torch.outer(st["row"], st["col"]) / st["row"].sum()
    assert torch.allclose(V, G * G)
    assert torch.allclose(p.detach(), -0.1 * torch.ones(3, 2, dtype=torch.float64))  # U = G / |G| = 1


def test_state_is_sublinear_for_matrices():
    p, q = torch.nn.Parameter(torch.zeros(64, 32)), torch.nn.Parameter(torch.zeros(32))
    opt = Adafactor([p, q])
    p.grad, q.grad = torch.ones(64, 32), torch.ones(32)
    opt.step()
    n = sum(t.numel() for t in opt.state[p].values() if torch.is_tensor(t))
    assert n == 64 + 32  # rows and columns, not 64 x 32
    assert opt.state[q]["v"].shape == (32,) and "m" not in opt.state[p]


@pytest.mark.parametrize("kw,match", [({"beta1": 1.0}, "beta1"), ({"decay_rate": 0.0}, "decay_rate"),
                                      ({"clip_threshold": 0.0}, "clip_threshold"), ({"eps2": -1.0}, "eps2")])
def test_bad_arguments_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        Adafactor([torch.nn.Parameter(torch.zeros(2, 2))], **kw)
