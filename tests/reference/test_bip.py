"""BiP (papers/bip_2022/method.py) and common.sparsity against literal definitions: top-k masks,
the straight-through estimator, layerwise magnitude pruning that never revives a weight, and the
implicit gradient's Hessian-free form against autograd's mixed second derivative d^2 l / dm dtheta
on a loss that is linear in z = m * theta (where grad_zz l = 0 holds exactly)."""
import pytest
import torch

from optrepro.papers.bip_2022.method import implicit_score_grads, masks_from_scores
from optrepro.sparsity import MaskedMLP, STETopK, density_schedule, magnitude_masks, topk_mask

pytestmark = pytest.mark.reference
D = torch.float64


def test_topk_mask_and_straight_through():
    s = torch.tensor([[0.3, -2.0, 0.1], [5.0, 0.2, 0.2]])
    assert torch.equal(topk_mask(s, 0.5), torch.tensor([[1.0, 0, 0], [1, 1, 0]]))  # ties: first wins
    x = torch.randn(2, 3, requires_grad=True)
    g = torch.randn(2, 3)
    (STETopK.apply(x, 0.5) * g).sum().backward()
    assert torch.equal(x.grad, g)
    with pytest.raises(ValueError, match="density"):
        topk_mask(s, 0.0)


def test_magnitude_pruning_keeps_the_largest_and_never_revives():
    w = [torch.tensor([[1.0, -4.0], [0.5, 3.0]]), torch.tensor([[2.0, -1.0, 0.1, 9.0]])]
    m1 = magnitude_masks(w, 0.5)
    assert torch.equal(m1[0], torch.tensor([[0.0, 1], [0, 1]])) and torch.equal(m1[1], torch.tensor([[1.0, 0, 0, 1]]))
    w2 = [torch.tensor([[9.0, 1.0], [9.0, 2.0]]), w[1]]  # the dead weights grew: they stay dead
    m2 = magnitude_masks(w2, 0.25, m1)
    assert torch.equal(m2[0], torch.tensor([[0.0, 0], [0, 1]])) and float(m2[1].sum()) == 1
    assert density_schedule(0.01, 2) == pytest.approx([0.1, 0.01])


def test_implicit_gradient_matches_autograd_on_a_loss_linear_in_z():
    torch.manual_seed(0)
    model = MaskedMLP([4, 3]).double()  # one layer: the logits are linear in z
    x = torch.randn(6, 4, dtype=D)
    c = torch.randn(6, 3, dtype=D)
    masks = masks_from_scores(model, 0.5)
    inv_gamma = 0.37
    # our implicit gradient, with the loss l(z) = sum(c * logits) (grad_zz l = 0) instead of CE
    got, _ = implicit_score_grads(model, masks, x, None, inv_gamma, loss_fn=lambda out, y: (c * out).sum())
    # autograd: grad_m l - inv_gamma * (d/dtheta grad_m l)^T grad_theta l
    W, b = model.weights[0].detach(), model.biases[0].detach()
    m = masks[0].clone().requires_grad_()
    th = W.clone().requires_grad_()
    loss = (c * (x @ (m * th).T + b)).sum()
    gm, gth = torch.autograd.grad(loss, (m, th), create_graph=True)
    mixed = torch.autograd.grad(gm, th, gth.detach())[0]  # (d^2 l / dm dtheta) grad_theta l
    want = torch.sign(model.scores[0].detach()) * (gm.detach() - inv_gamma * mixed)
    assert torch.allclose(got[0], want, rtol=0, atol=1e-12)
    assert float(mixed.abs().max()) > 0  # the correction is not trivially zero


def test_implicit_gradient_first_term_is_the_straight_through_score_gradient():
    torch.manual_seed(1)
    model = MaskedMLP([5, 7, 3]).double()
    x, y = torch.randn(10, 5, dtype=D), torch.randint(0, 3, (10,))
    got, ratio = implicit_score_grads(model, masks_from_scores(model, 0.6), x, y, 0.0)
    eff = [w.detach() * STETopK.apply(s.abs(), 0.6) for w, s in zip(model.weights, model.scores)]
    loss = torch.nn.functional.cross_entropy(model.forward_with(x, eff), y)
    want = torch.autograd.grad(loss, list(model.scores))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=0, atol=1e-14)
    assert ratio == 0.0
