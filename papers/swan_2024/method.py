"""SWAN (Ma, Gong, Scetbon and Meeds, 2024): SGD with Whitening And Normalization, a stateless
optimizer for the hidden matrices of a network. Each matrix's gradient G (m outputs x n inputs) is
pre-processed, with no state, by

    GradNorm:       G~ = (G - mean_in(G)) / std_in(G)       (each output row standardized over its inputs)
    GradWhitening:  D = (G~ G~^T)^{-1/2} G~                (the orthogonal polar factor of G~)
    rescale:        D <- D ||G~||_F / ||D||_F              (optional: the update keeps G~'s size)
    step:           W <- W (1 - lr wd) - lr D

The inverse square root is computed by the coupled Newton-Schulz iteration on the Gram matrix of
the smaller side (`ns_steps` iterations; for m > n, G~ (G~^T G~)^{-1/2} is the same polar factor
without a singular m x m Gram), in float32. `normalize=False` or `whiten=False` switch one operator
off (the paper's ablations). GradNorm's centred rows sum to zero, so G~ has rank at most n - 1 and a
square G~ G~^T is singular: the iteration then gives the pseudo-inverse square root (G~ has no
component in the null directions), i.e. the polar factor on G~'s range. As in the paper's LLaMA runs (read from its text, not its code, which
was not found), the embeddings, the output layer and the vectors are stepped by AdamW
(common.optim.base.adam_direction) at the same learning rate; roles come from the model
(common.optim.layers; from plain parameters the last matrix is the output layer)."""
from __future__ import annotations

import torch

from optrepro.optim.base import adam_direction, check_args, check_params, eval_closure, params_with_grad
from optrepro.optim.layers import RoleAware, as_matrix


def grad_norm(g: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """GradNorm of an (out, in) matrix: each row minus its mean, divided by its (population) std."""
    c = g - g.mean(dim=1, keepdim=True)
    return c / c.square().mean(dim=1, keepdim=True).sqrt().add(eps)


def inv_sqrt_newton_schulz(a: torch.Tensor, steps: int) -> torch.Tensor:
    """A^{-1/2} of a symmetric positive semi-definite matrix by the coupled Newton-Schulz iteration
    Y_0 = A / c, Z_0 = I, T = (3 I - Z Y) / 2, Y <- Y T, Z <- T Z (Z -> (A / c)^{-1/2}), c = ||A||_F."""
    c = torch.linalg.matrix_norm(a).clamp_min(1e-30)
    eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    y, z = a / c, eye
    for _ in range(steps):
        t = 0.5 * (3 * eye - z @ y)
        y, z = y @ t, t @ z
    return z / c.sqrt()


def grad_whiten(g: torch.Tensor, steps: int) -> torch.Tensor:
    """GradWhitening: (G G^T)^{-1/2} G, computed on the smaller side's Gram matrix."""
    if g.shape[0] <= g.shape[1]:
        return inv_sqrt_newton_schulz(g @ g.T, steps) @ g
    return g @ inv_sqrt_newton_schulz(g.T @ g, steps)


def swan_direction(g: torch.Tensor, normalize: bool = True, whiten: bool = True, rescale: bool = True,
                   ns_steps: int = 10) -> torch.Tensor:
    """SWAN's update direction for one (out, in) gradient matrix."""
    x = g if g.dtype in (torch.float32, torch.float64) else g.float()
    if normalize:
        x = grad_norm(x)
    if whiten:
        d = grad_whiten(x, ns_steps)
        if rescale:
            d = d * (torch.linalg.matrix_norm(x) / torch.linalg.matrix_norm(d).clamp_min(1e-30))
        x = d
    return x.to(g.dtype)


class SWAN(RoleAware, torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 normalize: bool = True, whiten: bool = True, rescale: bool = True, ns_steps: int = 10):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if not (isinstance(ns_steps, int) and ns_steps >= 1):
            raise ValueError(f"ns_steps must be an integer >= 1, got {ns_steps!r}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                    normalize=bool(normalize), whiten=bool(whiten),
                                                    rescale=bool(rescale), ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            role, in_dim = self.roles[id(p)]
            if role == "matrix":
                g = as_matrix(p.grad) if in_dim == 1 else p.grad.T  # (out, in); a kernel as (out, in x k)
                u = swan_direction(g, group["normalize"], group["whiten"], group["rescale"], group["ns_steps"])
                u = (u if in_dim == 1 else u.T).reshape(p.shape)
            else:
                u = adam_direction(st, p.grad, group["betas"], group["eps"])
            p.mul_(1 - group["lr"] * group["weight_decay"]).add_(u, alpha=-group["lr"])
        return loss
