"""The model EMA and the EMA scaling rule (common/optim/ema.py, papers/ema_scaling_2023) against
torch's own EMA (torch.optim.swa_utils) and the rule's closed form."""
import math

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from optrepro.optim.ema import ModelEMA, SGDScaling, scaled_momentum
from optrepro.papers.ema_scaling_2023.experiment import sample_stream

pytestmark = pytest.mark.reference


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def test_model_ema_equals_torch_averaged_model_at_every_step():
    model = _model()
    ours = ModelEMA(model, 0.9)
    ref = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    ref.update_parameters(model)  # torch's first update copies the model, as ModelEMA's constructor does
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(25):
        x, y = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ours.update(model)
        ref.update_parameters(model)
        for a, b in zip(ours.module.parameters(), ref.module.parameters()):
            assert torch.equal(a, b)
    assert ours.updates == 25 and not any(p.requires_grad for p in ours.module.parameters())


def test_kappa_updates_towards_a_fixed_target_equal_one_update_with_rho_to_the_kappa():
    torch.manual_seed(0)
    start, target = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    for rho in (0.9, 0.99, 0.999):
        for kappa in (2, 4, 8, 32):
            a = start.clone()
            for _ in range(kappa):
                a = rho * a + (1 - rho) * target
            rk = scaled_momentum(rho, kappa)
            b = rk * start + (1 - rk) * target
            assert torch.allclose(a, b, rtol=0, atol=1e-12)
    # the EMA's horizon in samples is kept: 1 / (1 - rho) steps of B ~ 1 / (1 - rho^kappa) steps of kappa B
    rho, kappa = 0.999, 8
    assert kappa / (1 - scaled_momentum(rho, kappa)) == pytest.approx(1 / (1 - rho), rel=kappa * (1 - rho))


def test_sgd_scaling_is_the_literal_rule_and_refuses_what_it_cannot_scale():
    h = SGDScaling.of(4, 0.02, 1600, 0.99, 8)
    assert (h.batch, h.lr, h.steps) == (32, 0.16, 200) and h.momentum == pytest.approx(0.99 ** 8)
    assert SGDScaling.of(4, 0.02, 1600, 0.99, 8, scale_ema=False).momentum == 0.99
    with pytest.raises(ValueError, match="multiple of kappa"):
        SGDScaling.of(4, 0.02, 1601, 0.99, 8)
    with pytest.raises(ValueError, match="positive integer"):
        SGDScaling.of(4, 0.02, 1600, 0.99, 0)
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="momentum"):
            ModelEMA(_model(), bad)


def test_both_runs_read_the_same_samples_in_the_same_order():
    s = sample_stream(100, 640, seed=3)
    assert len(s) == 640 and all(sorted(s[e * 100:(e + 1) * 100].tolist()) == list(range(100)) for e in range(6))
    B, kappa = 4, 8
    small = torch.cat([s[t * B:(t + 1) * B] for t in range(16)])
    large = torch.cat([s[t * B * kappa:(t + 1) * B * kappa] for t in range(2)])
    assert torch.equal(small, large)
    assert not torch.equal(s, sample_stream(100, 640, seed=4))
