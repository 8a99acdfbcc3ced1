r"""Newton's method with lazy Hessians (Doikov, Chayti and Jaggi, ICML 2023).

Cubic Newton with lazy Hessians (the paper's Algorithm 1): a new gradient at every step, the Hessian
only every m steps, at the last snapshot z_t = x_{m floor(t/m)}:

    x_{t+1} = x_t + argmin_h  <g(x_t), h> + 1/2 <H(z_t) h, h> + M/6 ||h||^3

m = 1 is cubic-regularized Newton (Nesterov and Polyak 2006). The paper's point is the arithmetic:
a Hessian costs about d gradients, and with H(z) factored once (here: its eigendecomposition) every
step in between costs O(d^2), so refreshing every m = d steps lowers the total cost by a factor of
about sqrt(d) over m = 1.

Regularized Newton with lazy Hessians (the convex variant; written from the abstract's description,
"lazy Newton steps with quadratic regularization", with the regularization sqrt(M ||g||) of the
gradient-regularized Newton method it builds on: the paper's exact constant was not checked):

    x_{t+1} = x_t - (H(z_t) + lambda_t I)^-1 g(x_t),   lambda_t = sqrt(M ||g(x_t)||)

Costs are counted as the work is done: the Hessian is assembled from d Hessian-vector products
(d unit vectors through double backward: d gradient-equivalents, the paper's model), each gradient is
one. `cost` = gradients + d * Hessians, in gradient-equivalents.

The optimizer takes one flat parameter tensor (the dense Hessian of a model of a few hundred
parameters); step(closure) with a closure that returns the loss without calling backward."""
from __future__ import annotations

import math
from typing import Callable

import torch

from optrepro.curvature import Lazy, cubic_step, hvp
from optrepro.optim.base import check_params

FORMS = ("cubic", "regularized")


class LazyNewton(torch.optim.Optimizer):
    def __init__(self, params, M: float = 1.0, every: int = 1, form: str = "cubic"):
        params = check_params(params)
        if len(params) != 1 or isinstance(params[0], dict) or params[0].ndim != 1:
            raise ValueError("LazyNewton takes exactly one flat (1-D) parameter tensor")
        if not (isinstance(M, (int, float)) and math.isfinite(M) and M > 0):
            raise ValueError(f"M must be a finite number > 0, got {M!r}")
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
        super().__init__(params, dict(M=M, form=form))
        self.lazy = Lazy(every)  # raises on a bad `every`
        self.n_grad = 0
        self.last = {}

    @property
    def dim(self) -> int:
        return self.param_groups[0]["params"][0].numel()

    @property
    def n_hess(self) -> int:
        return self.lazy.count

    @property
    def cost(self) -> int:
        """Gradient-equivalents so far: gradients + d per Hessian."""
        return self.n_grad + self.dim * self.n_hess

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        if closure is None:
            raise TypeError("LazyNewton.step needs a closure returning the loss (not backpropagated)")
        x = self.param_groups[0]["params"][0]
        M, form = self.param_groups[0]["M"], self.param_groups[0]["form"]
        with torch.enable_grad():
            loss = closure()
            refresh = self.lazy.calls % self.lazy.k == 0
            (g,) = torch.autograd.grad(loss, [x], create_graph=refresh)
        self.n_grad += 1

        def hessian_eig():
            eye = torch.eye(x.numel(), dtype=x.dtype, device=x.device)
            H = torch.stack([hvp(None, [x], [e], grads=[g])[0] for e in eye])
            return torch.linalg.eigh((H + H.T) / 2)

        lam, Q = self.lazy.get(hessian_eig)
        g = g.detach()
        with torch.no_grad():
            if form == "cubic":
                h = cubic_step(g, None, M, eig=(lam, Q))
            else:
                reg = math.sqrt(M * float(g.norm()))
                h = -(Q @ ((Q.T @ g) / (lam + reg)))
            x.add_(h)
        self.last = {"loss": float(loss.detach()), "grad_norm": float(g.norm()), "step_norm": float(h.norm())}
        return loss.detach()
