r"""Exact Gauss-Newton (Korbit, Adeoye, Bemporad and Zanon, 2024).

For a minibatch of b examples with model outputs f_i ∈ R^c and per-example losses ℓ_i(f_i), the
generalized Gauss-Newton matrix of the mean loss is H = J'QJ / b (J: the bc x p Jacobian of the
outputs, Q: block-diagonal Hessians of ℓ_i in f_i) and its gradient is g = J'r / b (r: the stacked
∂ℓ_i/∂f_i). The regularized (Levenberg-Marquardt) direction

    d = -(J'QJ / b + λ I_p)^-1 g  =  -J' (Q J J' + b λ I_bc)^-1 r          (Duncan-Guttman identity)

costs one bc x bc solve instead of a p x p one (common.curvature.gn_direction). The step is
θ <- θ + α v with v = μ v + d (μ = 0: no momentum).

    squared error  ℓ_i = ||f_i - y_i||^2 / 2:   r_i = f_i - y_i,          Q_i = I_c
    cross-entropy  ℓ_i = -log softmax(f_i)_y:    r_i = p_i - e_{y_i},      Q_i = diag(p_i) - p_i p_i'

What differs from the paper: α and λ are fixed (the paper also offers a line search and an adaptive
λ); J is formed explicitly with torch.func.jacrev (as the paper does). Reference: the direction
equals the dense p x p solve and g equals autograd's gradient (tests/reference/test_egn.py)."""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev

from optrepro.curvature import gn_direction

LOSSES = ("mse", "ce")


def mean_loss(f: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The mean over the b examples of ℓ_i(f_i), for outputs f (b x c) and targets y."""
    if loss == "mse":
        return 0.5 * ((f - y.view(f.shape)) ** 2).sum(1).mean()
    return nn.functional.cross_entropy(f, y)


def residual_and_hessian(f: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, Q): the stacked ∂ℓ_i/∂f_i (bc) and the block-diagonal Hessian of Σ ℓ_i in f (bc x bc)."""
    b, c = f.shape
    if loss == "mse":
        return (f - y.view(b, c)).reshape(-1), torch.eye(b * c, dtype=f.dtype, device=f.device)
    p = torch.softmax(f, -1)
    r = p - nn.functional.one_hot(y, c).to(f.dtype)
    return r.reshape(-1), torch.block_diag(*[torch.diag(pi) - torch.outer(pi, pi) for pi in p])


class EGN:
    """EGN on an nn.Module's parameters; `step(x, y)` takes one minibatch and returns its loss."""

    def __init__(self, model: nn.Module, loss: str = "mse", lr: float = 1.0, lam: float = 1.0, momentum: float = 0.0):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not (lr > 0 and lam > 0 and 0 <= momentum < 1):
            raise ValueError(f"need lr > 0, lam > 0 and momentum in [0, 1); got lr={lr} lam={lam} momentum={momentum}")
        self.model, self.loss, self.lr, self.lam, self.momentum = model, loss, lr, lam, momentum
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.v = None

    def _flat_params(self) -> torch.Tensor:
        ps = dict(self.model.named_parameters())
        return torch.cat([ps[n].detach().reshape(-1) for n in self.names])

    def direction(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(d, mean loss) at the current parameters."""
        ps = dict(self.model.named_parameters())
        shapes = [ps[n].shape for n in self.names]
        sizes = [ps[n].numel() for n in self.names]

        def outputs(theta: torch.Tensor) -> torch.Tensor:
            parts = torch.split(theta, sizes)
            params = {n: t.view(s) for n, t, s in zip(self.names, parts, shapes)}
            return functional_call(self.model, params, (x,))

        theta = self._flat_params()
        with torch.no_grad():
            f = outputs(theta)
            loss = mean_loss(f, y, self.loss)
            r, Q = residual_and_hessian(f, y, self.loss)
        J = jacrev(outputs)(theta).reshape(f.numel(), -1)
        return gn_direction(J, Q, r, self.lam, f.shape[0]), loss

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        d, loss = self.direction(x, y)
        self.v = d if self.v is None or self.momentum == 0 else self.momentum * self.v + d
        offset = 0
        ps = dict(self.model.named_parameters())
        for n in self.names:
            p = ps[n]
            p.add_(self.v[offset:offset + p.numel()].view_as(p), alpha=self.lr)
            offset += p.numel()
        return float(loss)
