r"""Lion-K (Chen, Liu, Liang & Liu, ICLR 2024, arXiv:2310.05898): Lion with its sign replaced by
the (sub)gradient of a convex function K. Per tensor, with gradient g = grad f(x):

    m~ = b1 m - (1 - b1) g                   (the Nesterov-style interpolation Lion takes the sign of)
    x  = x + lr (grad K(m~) - lambda x)      (decoupled weight decay lambda)
    m  = b2 m - (1 - b2) g

(m is minus Lion's exp_avg). K = ||.||_1, grad K = sign, is Lion exactly. Choices here:

    K              grad K(m)          K*(y)                      the problem (see below)
    l1             sign(m)            0 if ||y||_inf <= 1        min f(x) s.t. ||x||_inf <= 1/lambda
    l2             m / ||m||_2        0 if ||y||_2 <= 1          min f(x) s.t. ||x||_2 <= 1/lambda
    quadratic      m                  ||y||^2 / 2                min f(x) + lambda ||x||^2 / 2

The paper's result: Lion-K with weight decay lambda minimizes f(x) + K*(lambda x) / lambda. Its
fixed points say the same thing directly: at a fixed point m = -g, so m~ = -grad f(x) and the update
vanishes iff grad K(-grad f(x)) = lambda x, i.e. -grad f(x) is in the subdifferential of K*(lambda
.)/lambda at x (by Fenchel duality, y in dK(z) iff z in dK*(y)): the optimality condition of the
composite problem. For l1 that is the box-constrained least-squares KKT condition, for quadratic
the ridge normal equations. The l2 norm is taken over each whole tensor; grad K(0) = 0."""
from __future__ import annotations

import torch

from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


def grad_k(name: str, m: torch.Tensor) -> torch.Tensor:
    if name == "l1":
        return torch.sign(m)
    if name == "l2":
        n = m.norm()
        return m / n if n > 0 else torch.zeros_like(m)
    if name == "quadratic":
        return m.clone()
    raise ValueError(f"unknown K {name!r}: one of {', '.join(KS)}")


KS = ("l1", "l2", "quadratic")


class LionK(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0, k: str = "l1"):
        check_args(lr=lr, betas=betas, beta_closed=True, weight_decay=weight_decay)
        if k not in KS:
            raise ValueError(f"unknown K {k!r}: one of {', '.join(KS)}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, k=k))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            if "m" not in st:
                st["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            b1, b2 = group["betas"]
            m, g = st["m"], p.grad
            direction = grad_k(group["k"], b1 * m - (1 - b1) * g)
            p.add_(direction - group["weight_decay"] * p, alpha=group["lr"])
            m.mul_(b2).sub_(g, alpha=1 - b2)
        return loss
