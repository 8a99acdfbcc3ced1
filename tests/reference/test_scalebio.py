"""Data reweighting (common.bilevel.reweight) against literal equations and a closed form: the
per-source weighted loss and its softmax-Jacobian gradient (the authors' own check), the minibatch
oracle, and the penalty's weight-gradient converging to the exact hypergradient as alpha grows (a
ridge-regression reweighting problem, hypergradient by the implicit function theorem)."""
import pytest
import torch

from optrepro.bilevel import Bilevel, implicit
from optrepro.bilevel.reweight import SourceSampler, source_losses, weighted

pytestmark = pytest.mark.reference
D = torch.float64


def test_weighted_loss_and_its_gradient_in_the_weights():
    g = torch.Generator().manual_seed(0)
    per = torch.rand(12, generator=g, dtype=D)
    src = torch.tensor([0, 1, 2, 0, 1, 2, 2, 2, 0, 1, 1, 0])
    L = source_losses(per, src, 3)
    for k in range(3):
        assert float(L[k]) == pytest.approx(float(per[src == k].mean()), rel=1e-15)
    lam = torch.randn(3, generator=g, dtype=D, requires_grad=True)
    val = weighted(lam, L)
    p = torch.softmax(lam, 0)
    assert float(val.detach()) == pytest.approx(float(sum(p[k] * L[k] for k in range(3)).detach()), rel=1e-14)
    (gl,) = torch.autograd.grad(val, lam)
    J = torch.diag(p) - torch.outer(p, p)  # softmax Jacobian
    assert torch.allclose(gl, J @ L.detach(), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="every source"):
        source_losses(per[:3], torch.tensor([0, 0, 1]), 3)


def test_source_sampler_is_balanced_and_reproducible():
    src = torch.tensor([0] * 10 + [1] * 5 + [2] * 20)
    s = SourceSampler(src, 4, seed=3)
    b = s.batch(7)
    assert torch.equal(torch.bincount(src[b], minlength=3), torch.tensor([4, 4, 4]))
    assert torch.equal(b, SourceSampler(src, 4, seed=3).batch(7))
    assert not torch.equal(b, s.batch(8)) and not torch.equal(b, s.batch(7, stream=1))


class RidgeReweight(Bilevel):
    """x = lam (source logits), y = theta: g = sum_k softmax(lam)_k MSE_k(theta) + mu ||theta||^2,
    f = MSE_val(theta). Strongly convex lower level: the implicit hypergradient is exact."""

    def __init__(self, K=3, d=4, n=20, mu=0.1, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w_true = torch.randn(d, generator=g, dtype=D)
        self.X = [torch.randn(n, d, generator=g, dtype=D) for _ in range(K)]
        self.Y = [X @ w_true + (k + 0.2) * torch.randn(n, generator=g, dtype=D) for k, X in enumerate(self.X)]
        self.Xv = torch.randn(n, d, generator=g, dtype=D)
        self.Yv = self.Xv @ w_true
        self.mu, self.K, self.d = mu, K, d

    def losses(self, y):
        return torch.stack([((X @ y - Y) ** 2).mean() for X, Y in zip(self.X, self.Y)])

    def g(self, x, y):
        return weighted(x, self.losses(y)) + self.mu * y.square().sum()

    def f(self, x, y):
        return ((self.Xv @ y - self.Yv) ** 2).mean()

    def argmin(self, x, alpha=None):
        """argmin_y g (alpha None) or argmin_y f / alpha + g: both quadratics, solved exactly."""
        p = torch.softmax(x, 0)
        A = 2 * self.mu * torch.eye(self.d, dtype=D)
        b = torch.zeros(self.d, dtype=D)
        for pk, X, Y in zip(p, self.X, self.Y):
            A = A + pk * 2 * X.T @ X / len(X)
            b = b + pk * 2 * X.T @ Y / len(X)
        if alpha is not None:
            A = A + 2 * self.Xv.T @ self.Xv / len(self.Xv) / alpha
            b = b + 2 * self.Xv.T @ self.Yv / len(self.Xv) / alpha
        return torch.linalg.solve(A, b)


def test_penalty_weight_gradient_tends_to_the_hypergradient():
    prob = RidgeReweight()
    lam = torch.tensor([0.3, -0.2, 0.1], dtype=D)
    u = prob.argmin(lam)
    exact = implicit(prob, lam, u, solver="dense").grad
    errs = []
    for alpha in (10.0, 100.0, 1000.0):
        w = prob.argmin(lam, alpha)
        lam_ = lam.clone().requires_grad_()
        gap = alpha * (weighted(lam_, prob.losses(w)) - weighted(lam_, prob.losses(u)))
        (gl,) = torch.autograd.grad(gap, lam_)
        errs.append(float((gl - exact).norm() / exact.norm()))
    assert errs[-1] < 2e-2
    assert errs[0] / errs[1] > 5 and errs[1] / errs[2] > 5  # O(1/alpha)
