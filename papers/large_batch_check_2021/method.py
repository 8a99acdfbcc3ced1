r"""LARS and LAMB, the layer-wise large-batch optimizers that Nado et al. (2021, arXiv:2102.06356)
compare against Nesterov momentum and Adam.

LARS (You, Gitman & Ginsburg 2017, arXiv:1708.03888), per weight tensor w with gradient g:

    local = eta ||w|| / (||g|| + beta ||w||)       (1 when ||w|| = 0 or the denominator is 0)
    d     = local (g + beta w)
    m     = mu m + d                               (Nesterov: the step uses d + mu m)
    w     = w - lr m

with trust coefficient eta and weight decay beta. Tensors with one dimension (biases, norm scales)
skip both the trust ratio and the weight decay (d = g), as LARS is used in practice (and in
pytorch-optimizer).

LAMB (You et al. 2020, arXiv:1904.00962, Algorithm 2), per tensor:

    m = b1 m + (1 - b1) g,      v = b2 v + (1 - b2) g^2
    r = m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
    w = w - lr phi(||w||) / ||r + lambda w|| (r + lambda w),   phi(z) = min(max(z, 0), clamp)

(trust ratio 1 when ||w|| = 0 or ||r + lambda w|| = 0), on every tensor."""
from __future__ import annotations

import torch

from optrepro.optim.base import adam_steps, check_args, check_params, eval_closure, init_state, params_with_grad


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 1e-3, nesterov: bool = False):
        check_args(lr=lr, lr_positive=True, momentum=momentum, weight_decay=weight_decay,
                   trust_coefficient=trust_coefficient)
        if momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        super().__init__(check_params(params), dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                                    trust_coefficient=trust_coefficient, nesterov=bool(nesterov)))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            wd, mu = group["weight_decay"], group["momentum"]
            d = p.grad.add(p, alpha=wd) if wd and p.ndim > 1 else p.grad.clone()
            if p.ndim > 1:
                w_norm, g_norm = torch.linalg.norm(p), torch.linalg.norm(p.grad)
                denom = g_norm + wd * w_norm
                local = torch.where((w_norm > 0) & (denom > 0), group["trust_coefficient"] * w_norm / denom,
                                    torch.ones_like(w_norm))
                d.mul_(local)
            if mu:
                init_state(st, p, "momentum_buffer", step=False)
                buf = st["momentum_buffer"].mul_(mu).add_(d)
                d = d.add(buf, alpha=mu) if group["nesterov"] else buf
            p.add_(d, alpha=-group["lr"])
        return loss


class LAMB(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, clamp: float = 10.0):
        check_args(lr=lr, lr_positive=True, betas=betas, eps=eps, weight_decay=weight_decay, clamp=clamp)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                    clamp=clamp))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st, bc1, bc2 in adam_steps(self):
            b1, b2 = group["betas"]
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            r = (m / bc1) / ((v / bc2).sqrt_().add_(group["eps"]))
            if group["weight_decay"]:
                r.add_(p, alpha=group["weight_decay"])
            w_norm = torch.linalg.norm(p).clamp(0, group["clamp"])
            r_norm = torch.linalg.norm(r)
            trust = torch.where((w_norm > 0) & (r_norm > 0), w_norm / r_norm, torch.ones_like(w_norm))
            p.sub_(r * (group["lr"] * trust))
        return loss
