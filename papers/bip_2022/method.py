"""BiP, bi-level pruning (Zhang et al. 2022):

    min_m  l(m * theta*(m))    s.t.  theta*(m) = argmin_theta  l(m * theta) + gamma/2 ||theta||^2,
                                      m in {0, 1}^n, ||m||_0 <= k

solved by alternating one SGD step on theta (the mask fixed) with one SGD step on the mask scores s
(m = top-k(|s|), straight-through). The upper gradient is the implicit gradient

    dl/dm = grad_m l - (1/gamma) (d^2 l / dm dtheta) grad_theta l,

and the loss depends on (m, theta) only through z = m * theta (bi-linear), so with the paper's
Hessian-free assumption grad_zz l = 0 the mixed derivative is diag(grad_z l):

    dl/dm = theta * g - (1/gamma) m * g^2,     g = grad_z l(z)

(our derivation, tested against autograd's mixed second derivative on a loss linear in z). The
authors' code (trainer/bilevel.py, read not vendored) subtracts lr2 * (score gradient)^2 instead;
with their lr2 = 1e-4 = 1/gamma either correction is tiny, which `ig_ratio` measures.
"""
from __future__ import annotations

import torch
from torch import nn

from optrepro.sparsity import MaskedMLP, topk_mask


def masks_from_scores(model: MaskedMLP, density: float) -> list:
    return [topk_mask(s.detach().abs(), density) for s in model.scores]


def lower_loss(model: MaskedMLP, masks: list, x, y):
    """l(m * theta) with the mask fixed: gradients flow to weights and biases."""
    return nn.functional.cross_entropy(model.forward_with(x, [w * m for w, m in zip(model.weights, masks)]), y)


def implicit_score_grads(model: MaskedMLP, masks: list, x, y, inv_gamma: float, loss_fn=nn.functional.cross_entropy):
    """(gradients for the scores, ||correction|| / ||grad_m l||): the implicit gradient above, sent
    through |s| by the straight-through mask (d|s|/ds = sign(s))."""
    z = [(w * m).detach().requires_grad_() for w, m in zip(model.weights, masks)]
    loss = loss_fn(model.forward_with(x, z), y)
    gz = torch.autograd.grad(loss, z)
    out, first, corr = [], 0.0, 0.0
    for w, m, s, g in zip(model.weights, masks, model.scores, gz):
        dm = w.detach() * g            # grad_m l
        dtheta = m * g                 # grad_theta l
        c = inv_gamma * g * dtheta     # (1/gamma) diag(g) grad_theta l
        out.append(torch.sign(s.detach()) * (dm - c))
        first += float(dm.square().sum())
        corr += float(c.square().sum())
    return out, (corr / first) ** 0.5 if first > 0 else 0.0
