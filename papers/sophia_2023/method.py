r"""Sophia-G (Liu, Li, Hall, Liang and Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for
Language Model Pre-training", ICLR 2024).

A diagonal-Hessian-preconditioned sign-like update with per-coordinate clipping, the Hessian
diagonal refreshed only every k steps by the Gauss-Newton-Bartlett (GNB) estimator:

    every k steps:  ŷ ~ softmax(f(θ, x)) on a minibatch of B tokens,
                    ĝ = ∇ mean CE(f(θ, x), ŷ),   ĥ = B ĝ ⊙ ĝ   (E[ĥ] = diag of the Gauss-Newton matrix)
                    h_t = β2 h_{t-k} + (1 - β2) ĥ            (else h_t = h_{t-1})
    every step:     m_t = β1 m_{t-1} + (1 - β1) g_t
                    θ  <- θ (1 - lr λ)
                    θ  <- θ - lr sign(m_t) min(|m_t| / (ρ B h_t + 1e-15), 1)

(the official code's convention: the estimate stored is ĝ ⊙ ĝ and the batch size B multiplies it in
the denominator, `rho * bs * hess`). What differs from Adam: the denominator is curvature (not
gradient scale) and is refreshed every k steps only; the clip bounds every coordinate's step by lr,
which keeps the update safe where the curvature estimate is tiny or negative.

The trainer (common.train.train_loop) calls `update_hessian()` after every k-th step, with .grad
holding ĝ from the task's sampled-label loss (`curvature_loss`); `hessian_every` tells it k.
Reference: sophia-opt 0.2.2's SophiaG (the authors' package) given the same gradients, and the GNB
estimate's expectation against the exact Gauss-Newton diagonal (tests/reference/test_sophia.py)."""
from __future__ import annotations

import torch

from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


class SophiaG(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas=(0.965, 0.99), rho: float = 0.04, weight_decay: float = 0.1,
                 bs: int = 1, hessian_every: int = 10):
        check_args(lr=lr, betas=betas, rho=rho, weight_decay=weight_decay)
        if not (isinstance(bs, int) and bs >= 1):
            raise ValueError(f"bs (tokens per batch) must be an integer >= 1, got {bs!r}")
        if not (isinstance(hessian_every, int) and hessian_every >= 1):
            raise ValueError(f"hessian_every must be an integer >= 1, got {hessian_every!r}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), rho=rho, weight_decay=weight_decay,
                                                    bs=bs))
        self.hessian_every = hessian_every

    @staticmethod
    def _init(st: dict, p: torch.Tensor) -> None:
        if "step" not in st:
            st.update(step=0, exp_avg=torch.zeros_like(p), hessian=torch.zeros_like(p))

    @torch.no_grad()
    def update_hessian(self) -> None:
        """h <- β2 h + (1 - β2) ĝ ⊙ ĝ with ĝ in .grad (the gradient of the sampled-label loss)."""
        for group, p, st in params_with_grad(self):
            self._init(st, p)
            b2 = group["betas"][1]
            st["hessian"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            self._init(st, p)
            st["step"] += 1
            b1 = group["betas"][0]
            p.mul_(1 - group["lr"] * group["weight_decay"])
            m = st["exp_avg"].mul_(b1).add_(p.grad, alpha=1 - b1)
            ratio = (m.abs() / (group["rho"] * group["bs"] * st["hessian"] + 1e-15)).clamp_(max=1)
            p.addcmul_(m.sign(), ratio, value=-group["lr"])
        return loss
