r"""INNAprop (Bolte, Boustany, Pauwels & Purica, 2024, arXiv:2410.05871): the inertial Newton
method INNA with RMSprop's gradient scaling. Per tensor, with step size gamma (< beta), friction
alpha >= 0, geometric damping beta > 0, RMSprop decay sigma and decoupled weight decay lambda:

    theta   <- (1 - lambda gamma) theta
    v       =  sigma v + (1 - sigma) g^2,           v_hat = v / (1 - sigma^t)
    psi     =  (1 - gamma / beta) psi + gamma (1 / beta - alpha) theta
    theta   <- (1 + gamma (1 - alpha beta) / (beta - gamma)) theta - gamma / (beta - gamma) psi
               - gamma beta g / (sqrt(v_hat) + eps)

with psi_0 = (1 - alpha beta) theta_0 (the paper's initialization; the authors' code does the same,
github.com/innaprop/innaprop, classification/optimizers/innaprop.py, read to check this rule).
The auxiliary psi carries the second-order (Newton-like) information of the INNA dynamics at
first-order cost; memory is two buffers per parameter, as AdamW. Defaults are the authors'
(lr 1e-3, alpha 0.1, beta 0.9, sigma 0.999, eps 1e-8, weight decay 0.01).

With alpha beta = 1, psi_0 = 0 and psi stays 0 (its update adds gamma (1/beta - alpha) theta = 0):
the step is then theta <- theta - gamma beta g / (sqrt(v_hat) + eps), RMSprop with bias correction
and learning rate gamma beta (tests/reference/test_innaprop.py checks this reduction)."""
from __future__ import annotations

import torch

from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


class INNAprop(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, alpha: float = 0.1, beta: float = 0.9, sigma: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01):
        check_args(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, sigma=sigma)
        if not sigma < 1:
            raise ValueError(f"sigma must be in [0, 1), got {sigma}")
        if not (isinstance(beta, (int, float)) and beta > 0):
            raise ValueError(f"beta must be > 0, got {beta!r}")
        if not lr < beta:
            raise ValueError(f"lr must be < beta (the step divides by beta - lr), got lr={lr} beta={beta}")
        super().__init__(check_params(params), dict(lr=lr, alpha=alpha, beta=beta, sigma=sigma, eps=eps,
                                                    weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            lr, a, b, s = group["lr"], group["alpha"], group["beta"], group["sigma"]
            if not lr < b:
                raise ValueError(f"INNAprop needs lr < beta, got lr={lr} beta={b} (a schedule raised lr?)")
            if "psi" not in st:
                st["step"] = 0
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["psi"] = (1 - a * b) * p.detach().clone(memory_format=torch.preserve_format)
            st["step"] += 1
            g, v, psi = p.grad, st["exp_avg_sq"], st["psi"]
            p.mul_(1 - lr * group["weight_decay"])
            v.mul_(s).addcmul_(g, g, value=1 - s)
            denom = (v / (1 - s ** st["step"])).sqrt_().add_(group["eps"])
            psi.mul_(1 - lr / b).add_(p, alpha=lr * (1 / b - a))
            p.mul_(1 + lr * (1 - a * b) / (b - lr)).sub_(psi, alpha=lr / (b - lr)).addcdiv_(g, denom, value=-lr * b)
        return loss
