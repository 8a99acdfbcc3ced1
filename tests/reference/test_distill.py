"""common.distill.kd_loss against the literal definition, tau^2 * mean_i sum_v p_t (log p_t - log p_s)."""
import pytest
import torch

from optrepro.distill import kd_loss

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_kd_loss_is_the_literal_kl(tau):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 5, 11, generator=g, dtype=torch.float64), torch.randn(3, 5, 11, generator=g, dtype=torch.float64)
    pt = torch.softmax(t / tau, -1)
    want = tau ** 2 * (pt * (pt.log() - torch.log_softmax(s / tau, -1))).sum(-1).mean()
    torch.testing.assert_close(kd_loss(s, t, tau), want)


def test_tau1_is_cross_entropy_to_the_teacher_minus_its_entropy():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 7, generator=g, dtype=torch.float64), torch.randn(4, 7, generator=g, dtype=torch.float64)
    pt = torch.softmax(t, -1)
    ce = -(pt * torch.log_softmax(s, -1)).sum(-1).mean()
    ent = -(pt * pt.log()).sum(-1).mean()
    torch.testing.assert_close(kd_loss(s, t), ce - ent)


def test_zero_when_equal_and_no_gradient_into_the_teacher():
    t = torch.randn(2, 3, 5, requires_grad=True)
    s = t.detach().clone().requires_grad_(True)
    loss = kd_loss(s, t)
    assert abs(float(loss)) < 1e-6
    (kd_loss(s * 2, t)).backward()
    assert t.grad is None and s.grad is not None


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        kd_loss(torch.zeros(2, 5), torch.zeros(2, 6))
