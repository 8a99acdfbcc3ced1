r"""Riemannian SGD, Adam and AMSGrad on a product of manifolds (Bécigneul & Ganea, ICLR 2019,
arXiv:1810.00760).

A parameter of shape (..., d) is a product of manifolds, one per row (an embedding table: one
point of the Poincaré ball per entity). Adaptivity is across the factors of the product, not
across coordinates: the second moment is one number per row, the squared Riemannian norm of the
row's gradient. For row i at step t, with g = rgrad f(x) (common.geometry's egrad2rgrad):

    m   = b1 tau + (1 - b1) g                 tau: last step's m, parallel-transported to x
    v   = b2 v + (1 - b2) ||g||_x^2           one scalar per row
    vh  = max(vh, v)                          (AMSGrad; Adam uses v)
    x'  = exp_x(-lr (m / (1 - b1^t)) / (sqrt(vh / (1 - b2^t)) + eps))
    tau = P_{x -> x'}(m)

and Riemannian SGD (Bonnabel 2013) is x' = exp_x(-lr g). On the Euclidean manifold with one
coordinate per factor (rows of width 1) the updates are Adam's and AMSGrad's exactly.

The paper writes its algorithms without bias correction or eps; we keep both, as geoopt's
RiemannianAdam (our reference) does, so the Euclidean case is torch.optim.Adam; `bias_correction
= False` gives the uncorrected moments.

A parameter's manifold is its group's `manifold` entry (an instance of common.geometry.Manifold;
Euclidean when absent)."""
from __future__ import annotations

import torch

from optrepro.geometry import Euclidean, Manifold
from optrepro.optim.base import check_args, check_params, eval_closure, init_state, params_with_grad


class _OnManifolds(torch.optim.Optimizer):
    """Every group gets a `manifold` (Euclidean by default), checked as it is added."""

    def add_param_group(self, group):
        super().add_param_group(group)
        group = self.param_groups[-1]
        group.setdefault("manifold", Euclidean())
        if not isinstance(group["manifold"], Manifold):
            raise TypeError(f"a group's manifold must be an optrepro.geometry.Manifold, got "
                            f"{type(group['manifold']).__name__}")
        for p in group["params"]:
            if p.dim() == 0:
                raise ValueError(f"{type(self).__name__} needs parameters with at least one dimension: the last "
                                 "is the manifold's, each row a point (view a scalar as shape (1,))")


class RiemannianSGD(_OnManifolds):
    """x <- exp_x(-lr rgrad f(x)), row by row."""

    def __init__(self, params, lr: float = 1e-2):
        check_args(lr=lr)
        super().__init__(check_params(params), dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, _ in params_with_grad(self):
            M = group["manifold"]
            p.copy_(M.expmap(p, -group["lr"] * M.egrad2rgrad(p, p.grad)))
        return loss


class RiemannianAdam(_OnManifolds):
    """Riemannian Adam (amsgrad=True: Riemannian AMSGrad) with one second moment per row."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 amsgrad: bool = False, bias_correction: bool = True):
        check_args(lr=lr, betas=betas, eps=eps)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, amsgrad=bool(amsgrad),
                                                    bias_correction=bool(bias_correction)))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            M, (b1, b2), lr = group["manifold"], group["betas"], group["lr"]
            init_state(st, p, "exp_avg")
            if "exp_avg_sq" not in st:  # one number per row: the factor's squared gradient norm
                st["exp_avg_sq"] = p.new_zeros(p.shape[:-1] + (1,))
                if group["amsgrad"]:
                    st["max_exp_avg_sq"] = torch.zeros_like(st["exp_avg_sq"])
            st["step"] += 1
            g = M.egrad2rgrad(p, p.grad)
            m = st["exp_avg"].mul_(b1).add_(g, alpha=1 - b1)
            v = st["exp_avg_sq"].mul_(b2).add_(M.inner(p, g), alpha=1 - b2)
            if group["amsgrad"]:
                v = torch.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
            bc1, bc2 = ((1 - b1 ** st["step"], 1 - b2 ** st["step"]) if group["bias_correction"] else (1.0, 1.0))
            direction = (m / bc1) / ((v / bc2).sqrt() + group["eps"])
            new = M.expmap(p, -lr * direction)
            m.copy_(M.transp(p, new, m))
            p.copy_(new)
        return loss
