r"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas, Morwani, Zhao, Kwun, Shapira,
Brandfonbrener, Janson and Kakade, "SOAP: Improving and Stabilizing Shampoo using Adam", 2024).

For a parameter with gradient G (small dimensions merged if `merge_small_dims`), each dimension i of
size <= max_precondition_dim keeps Shampoo's statistic S_i <- shampoo_beta S_i + (1 - shampoo_beta)
G_(i) G_(i)^T and an orthonormal basis Q_i of it; larger dimensions (and 1-D tensors) use the
identity. Writing P(X) = X x_1 Q_1^T x_2 Q_2^T ... (X in the eigenbasis) and P^-1 its inverse:

    step 1:  S_i from G_1, Q_i = eigenvectors of S_i (largest eigenvalue first); no update
    step t:  m <- beta1 m + (1 - beta1) G                       (first moment, original space)
             v <- beta2 v + (1 - beta2) P(G)^2                  (second moment, eigenbasis)
             theta <- theta - lr sqrt(1 - beta2^(t-1)) / (1 - beta1^(t-1)) P^-1( P(m) / (sqrt(v) + eps) )
             theta <- theta (1 - lr wd)
             S_i updated with G_t; every `precondition_every` steps Q_i is refreshed by one power
             iteration and a QR decomposition, Q_i <- qr(S_i Q_i) with the columns ordered by the
             estimated eigenvalues diag(Q_i^T S_i Q_i), and v is permuted along dimension i the same way.

The bias corrections count the steps that updated (t - 1). Reference: pytorch-optimizer 4.1.0's SOAP
(the authors' defaults) step by step (tests/reference/test_soap.py)."""
from __future__ import annotations

import math

import torch

from .shampoo import merge_dims, mode_gram


def _to_basis(x: torch.Tensor, Qs: list, inverse: bool = False) -> torch.Tensor:
    """x x_1 Q_1^T x_2 Q_2^T ... (inverse: x x_1 Q_1 x_2 Q_2 ...); None leaves a dimension as it is."""
    for dim, Q in enumerate(Qs):
        if Q is not None:
            x = torch.tensordot(Q if inverse else Q.T, x, dims=([1], [dim])).movedim(0, dim)
    return x


class SOAP(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 3e-3, betas=(0.95, 0.95), shampoo_beta: float | None = None,
                 eps: float = 1e-8, weight_decay: float = 1e-2, precondition_every: int = 10,
                 max_precondition_dim: int = 10000, merge_small_dims: bool = False):
        from optrepro.optim.base import check_args, check_params
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if shampoo_beta is not None and not (isinstance(shampoo_beta, (int, float)) and 0 <= shampoo_beta < 1):
            raise ValueError(f"shampoo_beta must be in [0, 1) or None (beta2), got {shampoo_beta!r}")
        for name, v in (("precondition_every", precondition_every), ("max_precondition_dim", max_precondition_dim)):
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                    shampoo_beta=shampoo_beta))
        self.precondition_every, self.max_dim = precondition_every, max_precondition_dim
        self.merge_small_dims = bool(merge_small_dims)

    def _shape(self, p: torch.Tensor) -> list[int]:
        if p.ndim <= 1:
            return list(p.shape)
        return merge_dims(p.shape, self.max_dim) if self.merge_small_dims else list(p.shape)

    def _update_stats(self, g: torch.Tensor, st: dict, sb: float) -> None:
        for dim, S in enumerate(st["stats"]):
            if S is not None:
                S.lerp_(mode_gram(g, dim), 1 - sb)

    def _refresh(self, st: dict) -> None:
        """One power iteration + QR per dimension, columns ordered by the estimated eigenvalues."""
        v = st["exp_avg_sq"].reshape(st["shape"])
        for dim, (S, Q) in enumerate(zip(st["stats"], st["Q"])):
            if S is None:
                continue
            SQ = S @ Q
            order = torch.argsort((Q * SQ).sum(0), descending=True)
            v = v.index_select(dim, order)
            st["Q"][dim] = torch.linalg.qr(SQ[:, order])[0]
        st["exp_avg_sq"] = v.reshape(st["exp_avg_sq"].shape)

    @torch.no_grad()
    def step(self, closure=None):
        from optrepro.optim.base import eval_closure, params_with_grad
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            b1, b2 = group["betas"]
            sb = group["shampoo_beta"] if group["shampoo_beta"] is not None else b2
            shape = self._shape(p)
            g = p.grad.detach().reshape(shape)
            if "step" not in st:  # the first gradient only builds the statistics and the bases
                st["step"], st["shape"] = 0, shape
                st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                st["stats"] = [torch.zeros(d, d, dtype=p.dtype, device=p.device) if (len(shape) > 1 and d <= self.max_dim)
                               else None for d in shape]
                self._update_stats(g, st, sb)
                st["Q"] = [None if S is None else torch.linalg.eigh(S)[1].flip(1) for S in st["stats"]]
                continue
            st["step"] += 1
            t = st["step"]
            m, v = st["exp_avg"], st["exp_avg_sq"]
            gq = _to_basis(g, st["Q"])
            m.lerp_(p.grad, 1 - b1)
            v.lerp_(gq.square().reshape(v.shape), 1 - b2)
            mq = _to_basis(m.reshape(shape), st["Q"])
            d = _to_basis(mq / (v.reshape(shape).sqrt() + group["eps"]), st["Q"], inverse=True)
            step = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            p.add_(d.reshape(p.shape), alpha=-step)
            if group["weight_decay"]:
                p.mul_(1 - group["lr"] * group["weight_decay"])
            self._update_stats(g, st, sb)
            if t % self.precondition_every == 0:
                self._refresh(st)
        return loss
