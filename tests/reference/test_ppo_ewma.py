"""PPO-EWMA's pieces against closed forms: the decoupled objective reduces to PPO's L^CLIP when the
proximal policy is the behavior policy, its gradient at θ = θ_prox is the importance-weighted policy
gradient, the bias-corrected EWMA equals the explicit weighted average, and the adjustments."""
import math

import pytest
import torch

from optrepro.papers.ppo_ewma_2022.method import EWMAModel, EwmaMoments, adjust, clipped_objective, decay_to_age

pytestmark = pytest.mark.reference


def _data(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = (torch.randn(n, generator=g) * 0.3 - 1).requires_grad_(True)
    return logp, -1 + 0.3 * torch.randn(n, generator=g), -1 + 0.3 * torch.randn(n, generator=g), torch.randn(n, generator=g)


def test_reduces_to_ppo_clip_when_proximal_is_behavior():
    logp, behav, _, adv = _data()
    r = torch.exp(logp - behav)
    want = -torch.minimum(r * adv, torch.clamp(r, 0.8, 1.2) * adv).mean()
    torch.testing.assert_close(clipped_objective(logp, behav, behav, adv, 0.2, imp_samp_max=0), want)


def test_decoupled_objective_literal_and_its_gradient():
    logp, behav, prox, adv = _data(seed=1)
    r = torch.exp(logp - prox)
    w = torch.exp(prox - behav)
    want = -(w * torch.minimum(r * adv, torch.clamp(r, 0.8, 1.2) * adv)).mean()
    torch.testing.assert_close(clipped_objective(logp, behav, prox, adv, 0.2, imp_samp_max=0), want)
    # at θ = θ_prox no ratio is clipped: the gradient is that of E[π_θ / π_behav · A]
    at = prox.clone().requires_grad_(True)
    g1, = torch.autograd.grad(clipped_objective(at, behav, prox, adv, 0.2, imp_samp_max=0), at)
    g2, = torch.autograd.grad(-(torch.exp(at - behav) * adv).mean(), at)
    torch.testing.assert_close(g1, g2)


def test_importance_ratio_cap():
    logp = torch.tensor([0.0])
    out = clipped_objective(logp, torch.tensor([-20.0]), torch.tensor([0.0]), torch.tensor([1.0]), 0.2, 100.0)
    assert math.isclose(-out.item(), 100.0, rel_tol=1e-5)  # π/π_behav = e^20 capped at 100


def test_bias_corrected_ewma_is_the_weighted_average():
    beta, net = 0.7, torch.nn.Linear(3, 2)
    ewma, history = EWMAModel(net, beta), [torch.cat([p.detach().flatten() for p in net.parameters()])]
    for k in range(6):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ewma.update(net)
        history.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    t = len(history) - 1
    w = torch.tensor([beta ** (t - k) for k in range(t + 1)])
    want = (w[:, None] * torch.stack(history)).sum(0) / w.sum()
    got = torch.cat([p.flatten() for p in ewma.module.parameters()])
    torch.testing.assert_close(got, want)


def test_ewma_moments_decay_zero_is_per_batch():
    m, x = EwmaMoments(0.0), torch.randn(100)
    m.update(torch.randn(50) + 5)
    mean, var = m.update(x)
    assert math.isclose(mean, x.mean().item(), abs_tol=1e-6) and math.isclose(var, x.var(unbiased=False).item(), rel_tol=1e-5)


def test_adjustments():
    a = adjust(1e-3, (0.9, 0.999), 0.75, 0.0, 1)
    assert a.lr == 1e-3 and a.betas == pytest.approx((0.9, 0.999)) and a.prox_decay == pytest.approx(0.75)
    a = adjust(1e-3, (0.9, 0.999), 0.75, 0.0, 4)
    assert a.lr == pytest.approx(2.5e-4) and a.betas == pytest.approx((0.975, 0.99975))
    assert decay_to_age(a.prox_decay) == pytest.approx(4 * decay_to_age(0.75)) and a.adv_decay == pytest.approx(0.75)
