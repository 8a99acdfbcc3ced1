r"""TODO: the method in one paragraph, then its update equations, then what differs from the parent.

Template: SGD with heavy-ball momentum, written as a torch.optim.Optimizer.

    b_t = μ b_{t-1} + g_t
    θ_t = θ_{t-1} - lr b_t
"""
from __future__ import annotations

import torch

from optrepro.optim.base import eval_closure, params_with_grad


class Method(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.9, weight_decay: float = 0.0):
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got {lr}, {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, state in params_with_grad(self):
            g = p.grad.add(p, alpha=group["weight_decay"])
            buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
            buf.mul_(group["momentum"]).add_(g)
            p.sub_(buf, alpha=group["lr"])
        return loss
