"""LARS against pytorch-optimizer's LARS at every step, and LAMB against its literal equations
(You et al. 2020, Algorithm 2) written out below in float64 (the packages' LAMBs differ from the
paper: pytorch-optimizer's drops the second-moment bias correction and rescales by 1 / (1 - b1^t)
after the trust ratio; torch-optimizer's moves eps)."""
import pytest
import torch
from pytorch_optimizer import LARS as RefLARS

from optrepro.papers.large_batch_check_2021.method import LAMB, LARS
from tests.reference.lockstep import lockstep

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("kw", [dict(momentum=0.9), dict(momentum=0.9, weight_decay=0.01, nesterov=True),
                                dict(momentum=0.0, weight_decay=0.1, trust_coefficient=0.02)])
def test_lars_equals_pytorch_optimizer_at_every_step(kw):
    lockstep(lambda p: LARS(p, lr=0.05, **kw), lambda p: RefLARS(p, lr=0.05, foreach=False, **kw))
    lockstep(lambda p: LARS(p, lr=0.05, **kw), lambda p: RefLARS(p, lr=0.05, foreach=True, **kw), atol=1e-9, rtol=1e-8)


class LiteralLAMB:
    """Algorithm 2 of arXiv:1904.00962, one tensor at a time, no shortcuts."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, clamp=10.0):
        self.params, self.lr, self.b, self.eps, self.wd, self.clamp = params, lr, betas, eps, weight_decay, clamp
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.b
        for i, p in enumerate(self.params):
            g = p.grad
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            m_hat = self.m[i] / (1 - b1 ** self.t)
            v_hat = self.v[i] / (1 - b2 ** self.t)
            r = m_hat / (torch.sqrt(v_hat) + self.eps) + self.wd * p
            phi = min(max(float(p.norm()), 0.0), self.clamp)
            ratio = phi / float(r.norm()) if phi > 0 and float(r.norm()) > 0 else 1.0
            p.sub_(self.lr * ratio * r)


@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=0.01), dict(betas=(0.8, 0.99), clamp=2.0)])
def test_lamb_equals_the_papers_algorithm_at_every_step(kw):
    lockstep(lambda p: LAMB(p, lr=0.01, **kw), lambda p: LiteralLAMB(p, lr=0.01, **kw))


def test_trust_ratios_make_the_step_scale_free():
    """LAMB's step on a tensor has norm lr * phi(||w||) whatever the gradient's scale (no weight decay),
    and LARS's local rate makes its first step eta * lr * ||w|| for a matrix."""
    for scale in (1e-3, 1.0, 1e3):
        w = torch.nn.Parameter(torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
        w0 = w.detach().clone()
        w.grad = scale * torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        LAMB([w], lr=0.1).step()
        assert float((w.detach() - w0).norm()) == pytest.approx(0.1 * min(float(w0.norm()), 10.0), rel=1e-6)
        w = torch.nn.Parameter(w0.clone())
        w.grad = scale * torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        LARS([w], lr=0.5, momentum=0.9, trust_coefficient=1e-3).step()
        assert float((w.detach() - w0).norm()) == pytest.approx(0.5 * 1e-3 * float(w0.norm()), rel=1e-9)
