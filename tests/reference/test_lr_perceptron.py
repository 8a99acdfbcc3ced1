"""LR+GD and the batch perceptron (papers/lr_perceptron_2024) against autograd and the gamma -> infinity
limit written out: w_t / gamma equals the perceptron's v_t at every iteration."""
import pytest
import torch

from optrepro.papers.lr_perceptron_2024 import method
from optrepro.papers.lr_perceptron_2024.experiment import separable_data

pytestmark = pytest.mark.reference


def test_logistic_loss_and_gradient_equal_autograd():
    A, y = separable_data(60, 7, 0.05, seed=1)
    w = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = torch.log1p(torch.exp(-y * (A @ w))).mean()
    loss.backward()
    assert method.logistic_loss(A, y, w.detach()) == pytest.approx(float(loss.detach()), rel=1e-14)
    assert torch.allclose(method.logistic_grad(A, y, w.detach()), w.grad, rtol=1e-12, atol=1e-15)
    big = torch.full((7,), 1e4, dtype=torch.float64)  # softplus form: no overflow where exp(-m) would
    assert torch.isfinite(torch.tensor(method.logistic_loss(A, y, big)))


def test_large_step_lr_gd_is_the_batch_perceptron_scaled_by_gamma():
    A, y = separable_data(200, 10, 0.05, seed=0)
    gamma, T = 1e8, 40
    gd = dict(method.lr_gd(A, y, gamma, T))
    pc = dict(method.batch_perceptron(A, y, T))
    hit = next(t for t in range(1, T + 1) if method.separated(A, y, pc[t]))
    assert hit > 2  # the comparison covers several perceptron steps
    for t in range(hit + 1):
        assert torch.allclose(gd[t] / gamma, pc[t], rtol=1e-6, atol=1e-9), t
        assert torch.equal(method.margins(A, y, gd[t]) > 0, method.margins(A, y, pc[t]) > 0)
    assert method.separated(A, y, gd[hit]) and not method.separated(A, y, gd[hit - 1])
    # the perceptron stops once separated; LR+GD keeps moving, ever more slowly
    assert torch.equal(pc[hit], pc[T])


def test_first_perceptron_step_adds_half_of_every_point():
    A, y = separable_data(30, 4, 0.05, seed=2)
    v1 = dict(method.batch_perceptron(A, y, 1))[1]
    assert torch.allclose(v1, 0.5 * (A.T @ y) / len(y), rtol=0, atol=1e-15)


def test_separable_data_has_the_margin_and_is_seeded():
    A, y = separable_data(300, 20, 0.1, seed=4)
    g = torch.Generator().manual_seed(4 * 7919 + 3)
    w_star = torch.randn(20, generator=g, dtype=torch.float64)
    w_star /= w_star.norm()
    m = y * (A @ w_star)
    assert A.shape == (300, 20) and bool((m >= 0.1).all()) and 0.3 < float((y > 0).double().mean()) < 0.7
    assert torch.equal(A, separable_data(300, 20, 0.1, seed=4)[0])
    assert not torch.equal(A, separable_data(300, 20, 0.1, seed=5)[0])
