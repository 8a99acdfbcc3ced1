"""Gradient subspaces of a policy-gradient learner (Schneider et al. 2024, "Identifying Policy Gradient
Subspaces"): the exact Hessian of a loss over a set of parameters, the subspace spanned by its top-k
eigenvectors (largest |eigenvalue|: the high-curvature directions), the fraction of the gradient's
squared norm inside it, and the overlap of two such subspaces.

- `hessian_and_grad(loss_of, params)`: the loss as a function of the parameters' flat vector
  (torch.func.functional_call on a copy of the values), its gradient and its n x n Hessian;
- `top_subspace(H, k)`: an n x k orthonormal basis (float64 eigendecomposition);
- `gradient_fraction(V, g)` = ||V^T g||^2 / ||g||^2 (a uniformly random k-dimensional subspace
  captures k / n on average);
- `overlap(V1, V2)` = ||V1^T V2||_F^2 / k (1 for the same subspace, k / n on average for random ones).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def hessian_and_grad(module: nn.Module, names: list[str], loss_of: Callable[[dict], torch.Tensor]):
    """(loss value, gradient [n], Hessian [n, n]) of `loss_of(params)` over the module's parameters named
    `names` (flattened in that order), the others held at their values, in the parameters' dtype."""
    base = {k: v.detach() for k, v in module.named_parameters()}
    shapes = [base[k].shape for k in names]
    sizes = [base[k].numel() for k in names]
    flat0 = torch.cat([base[k].reshape(-1) for k in names])

    def f(flat):
        parts = torch.split(flat, sizes)
        params = {**base, **{k: p.view(s) for k, p, s in zip(names, parts, shapes)}}
        return loss_of(params)

    H = torch.func.hessian(f)(flat0)
    x = flat0.clone().requires_grad_()
    loss = f(x)
    g, = torch.autograd.grad(loss, x)
    return float(loss.detach()), g.detach(), 0.5 * (H + H.T).detach()


def top_subspace(H: torch.Tensor, k: int) -> torch.Tensor:
    """n x k orthonormal eigenvectors of the symmetric H with the largest |eigenvalues|."""
    if not 1 <= k <= H.shape[0]:
        raise ValueError(f"k must be in [1, {H.shape[0]}], got {k}")
    vals, vecs = torch.linalg.eigh(H.double())
    order = torch.argsort(vals.abs(), descending=True)[:k]
    return vecs[:, order]


def gradient_fraction(V: torch.Tensor, g: torch.Tensor) -> float:
    g = g.double()
    n2 = float(g @ g)
    return float((V.T @ g).pow(2).sum()) / n2 if n2 > 0 else float("nan")


def overlap(V1: torch.Tensor, V2: torch.Tensor) -> float:
    return float((V1.T @ V2).pow(2).sum()) / V1.shape[1]


def random_subspace(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random n x k orthonormal basis (QR of a Gaussian matrix)."""
    q, r = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))[None]
