"""MDPO's objective against its closed form, and the annealing schedule."""
import pytest
import torch
from torch.distributions import Categorical

from optrepro.rl.policy import DiagGaussian
from optrepro.papers.mdpo_2020.method import kl_weight, mdpo_loss

pytestmark = pytest.mark.reference


def test_mdpo_loss_categorical_closed_form():
    g = torch.Generator().manual_seed(0)
    new, old = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g)
    a, adv = torch.randint(0, 3, (50,), generator=g), torch.randn(50, generator=g)
    pn, po = new.softmax(-1), old.softmax(-1)
    old_logp = po.log()[torch.arange(50), a]
    kl = (pn * (pn.log() - po.log())).sum(-1).mean()  # KL(π_θ ‖ π_k)
    want = -(pn[torch.arange(50), a] / po[torch.arange(50), a] * adv).mean() + 2.5 * kl
    loss, k = mdpo_loss(Categorical(logits=new), Categorical(logits=old), a, old_logp, adv, 2.5)
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(k, kl)


def test_mdpo_gaussian_kl_direction():
    """KL(N(μ1, σ1) ‖ N(μ0, σ0)) summed over dimensions, the new policy first."""
    mu1, s1, mu0, s0 = torch.tensor([[0.3, -1.0]]), torch.tensor([[0.5, 2.0]]), torch.tensor([[0.0, 0.0]]), \
        torch.tensor([[1.0, 1.0]])
    want = (torch.log(s0 / s1) + (s1 ** 2 + (mu1 - mu0) ** 2) / (2 * s0 ** 2) - 0.5).sum()
    _, k = mdpo_loss(DiagGaussian(mu1, s1), DiagGaussian(mu0, s0), torch.zeros(1, 2), torch.zeros(1), torch.ones(1), 1.0)
    torch.testing.assert_close(k, want)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu1, s1), torch.distributions.Normal(mu0, s0)).sum()
    torch.testing.assert_close(k, ref)


def test_annealing():
    assert kl_weight(0, 10) == 1.0 and kl_weight(5, 10) == pytest.approx(2.0) and kl_weight(9, 10) == pytest.approx(10.0)
