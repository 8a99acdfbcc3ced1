"""u_mup_2024 against unit-scaling 0.3.5 (Graphcore's package): with the same weights our u-muP
decoder gives unit_scaling.TransformerDecoder's logits, its unit-scaled gradients for every
tensor, unit_scaling.optim.Adam's per-tensor learning rates, and the same parameters after Adam
steps. unit_scaling computes RMS in float32 even for float64 inputs, so agreement is to ~1e-6.
The residual rule and the experiment's optimum refinement against closed forms."""
import math

import pytest
import torch
import unit_scaling as uu
import unit_scaling.functional as U
from unit_scaling.core.functional import transformer_residual_scaling_rule

from optrepro.papers.u_mup_2024 import experiment as E
from optrepro.papers.u_mup_2024 import method as M
from optrepro.papers.u_mup_2024.method import TinyDecoder, residual_tau

pytestmark = pytest.mark.reference
f64 = torch.float64


def _pair(vocab=40, d=32, layers=2, heads=4, seed=0):
    torch.manual_seed(seed)
    ref = uu.TransformerDecoder(hidden_size=d, vocab_size=vocab, layers=layers, heads=heads).to(f64)
    ours = TinyDecoder(vocab, d, layers, heads, "umup").to(f64)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _ref_loss(ref, x, y):
    return U.cross_entropy(ref(x).flatten(0, 1), y.flatten())


def _data(vocab, b=4, t=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (b, t), generator=g), torch.randint(0, vocab, (b, t), generator=g)


@pytest.mark.parametrize("d,layers,heads", [(32, 2, 4), (64, 3, 2), (16, 1, 1)])
def test_logits_and_gradients_equal_unit_scaling(d, layers, heads):
    ours, ref = _pair(d=d, layers=layers, heads=heads)
    x, y = _data(40)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)
    lo, lr_ = ours.loss(x, y), _ref_loss(ref, x, y)
    torch.testing.assert_close(lo, lr_, atol=1e-6, rtol=1e-6)
    lo.backward()
    lr_.backward()
    refp = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        q = refp[name].grad
        err = float((p.grad - q).abs().max() / q.abs().max())
        assert err < 1e-5, f"{name}: relative gradient error {err:.2e}"


def test_gradients_are_not_the_plain_derivative(monkeypatch):
    """The unit-scaled backward is not autograd of the forward: a model that only scaled its
    forward (every scale applied in both passes) would fail the test above. Guards against that
    test passing vacuously; per tensor the two differ by more than one common factor."""
    ours, _ = _pair()
    x, y = _data(40)
    ours.loss(x, y).backward()
    unit = [p.grad.clone() for p in ours.parameters()]
    ours.zero_grad()
    monkeypatch.setattr(M, "scaled", lambda t, fwd=1.0, bwd=1.0: t * fwd)
    ours.loss(x, y).backward()
    ratios = [float(a.norm() / p.grad.norm()) for a, p in zip(unit, ours.parameters())]
    assert max(ratios) / min(ratios) > 2.0


def test_learning_rates_equal_unit_scaling_adam():
    ours, ref = _pair(d=64, layers=3, heads=4)
    opt = uu.optim.Adam(ref.parameters(), lr=0.3)
    ref_lr = {id(g["params"][0]): g["lr"] for g in opt.param_groups}
    names = {id(p): n for n, p in ref.named_parameters()}
    ours_lr = {n: g["lr"] for g in ours.lr_groups(0.3) for n, p in ours.named_parameters() if p is g["params"][0]}
    assert len(ours_lr) == len(ref_lr)
    for pid, lr in ref_lr.items():
        assert ours_lr[names[pid]] == pytest.approx(lr, rel=1e-12), names[pid]
    # the rules themselves: hidden 0.3 / sqrt(fan_in) / sqrt(depth), embedding 0.3 / sqrt(d), readout 0.3
    assert ours_lr["projection.weight"] == pytest.approx(0.3)
    assert ours_lr["embedding.weight"] == pytest.approx(0.3 / 8)
    assert ours_lr["layers.0.mlp.linear_2.weight"] == pytest.approx(0.3 / math.sqrt(256) / math.sqrt(3))


def test_adam_trajectory_equals_unit_scaling():
    ours, ref = _pair(d=32, layers=2, heads=2)
    o = torch.optim.Adam(ours.lr_groups(0.05))
    r = uu.optim.Adam(ref.parameters(), lr=0.05)
    refp = dict(ref.named_parameters())
    for step in range(5):
        x, y = _data(40, seed=10 + step)
        for opt, loss in ((o, ours.loss(x, y)), (r, _ref_loss(ref, x, y))):
            opt.zero_grad()
            loss.backward()
            opt.step()
        for name, p in ours.named_parameters():
            torch.testing.assert_close(p.detach(), refp[name].detach(), atol=1e-5, rtol=1e-5,
                                       msg=lambda m: f"step {step + 1}, {name}: {m}")


def test_residual_rule_equals_unit_scaling():
    rule = transformer_residual_scaling_rule()
    for layers in (1, 2, 3, 8):
        for i in range(2 * layers):
            assert residual_tau(i, 2 * layers) == pytest.approx(rule(i, 2 * layers), rel=1e-14)


def test_unit_init_and_unit_activations():
    """u-muP's premise: weights start at unit scale and so does the output of every residual
    stream's update (checked on the embedding and the final hidden state)."""
    torch.manual_seed(0)
    m = TinyDecoder(50, 256, 2, 8, "umup")
    for n, p in m.named_parameters():
        assert abs(float(p.detach().std()) - 1.0) < 0.05, n
    x = torch.randint(0, 50, (8, 32))
    with torch.no_grad():
        h = m(x)  # readout divides by fan_in: logits ~ 1/sqrt(d) at init
    assert 0.3 / math.sqrt(256) < float(h.std()) < 3 / math.sqrt(256)


def test_sp_is_one_learning_rate_and_pytorch_default_init():
    torch.manual_seed(0)
    m = TinyDecoder(50, 64, 2, 4, "sp")
    (g,) = m.lr_groups(0.01)
    assert g["lr"] == 0.01 and len(g["params"]) == len(list(m.parameters()))
    w = m.layers[0].mlp.linear_2.weight.detach()  # nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(w.abs().max()) <= 1 / math.sqrt(256) + 1e-7
    assert abs(float(w.std()) - 1 / math.sqrt(3 * 256)) < 0.002


def test_optimum_refinement_is_the_parabola_vertex():
    # losses from (k - 0.3)^2 + 2 on an integer grid: the vertex is 0.3 exactly
    ks = [-2, -1, 0, 1, 2]
    v, edge = E.optimum(ks, [(k - 0.3) ** 2 + 2 for k in ks])
    assert v == pytest.approx(0.3) and not edge
    v, edge = E.optimum(ks, [5, 4, 3, 2, 1])
    assert v == 2 and edge
    v, edge = E.optimum(ks, [float("nan"), 3.0, 2.0, 2.5, float("nan")])  # diverged ends are never best
    assert not edge and -0.5 <= v <= 0.5
    v, edge = E.optimum(ks, [float("nan")] * 5)
    assert v != v and edge
