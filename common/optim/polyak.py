"""Preconditioned stochastic Polyak steps (the SPS / PSPS / SANIA family), written from the equations.

One step on a minibatch loss f_i with gradient g and a diagonal preconditioner D > 0:

    gamma = lr * (f_i(w) - f_star) / ||g||^2_{D^-1}        (||g||^2_{D^-1} = sum_j g_j^2 / D_j)
    gamma = min(gamma, max_step)                            (SPS_max; max_step = inf: none)
    w    <- w - gamma * D^-1 g

With lr = 1 the new point is the projection of w, in the norm ||.||_D, onto the zero set
{w': f_i(w) + <g, w' - w> = f_star} of the linearised loss: D = I is SPS (Loizou et al. 2021, c = 1),
any other D is PSPS (Abdukhakimov et al. 2024) and the SANIA framework's diagonal members
(Abdukhakimov et al. 2023). The preconditioners (`precond`):

- identity:     D = 1 (SPS)
- hutchinson:   D_t = beta D_{t-1} + (1 - beta) z * (H z), z Rademacher, H the minibatch Hessian
                (a Hessian-vector product); D_0 the mean of `hutch_init` such samples; used as
                max(alpha, |D_t|)
- adagrad:      v_t = v_{t-1} + g^2,                   D = sqrt(v_t) + eps
- adam:         v_t = beta v_{t-1} + (1 - beta) g^2,   D = sqrt(v_t / (1 - beta^t)) + eps
- adagrad_sqr:  as adagrad with D = v_t + eps          (SANIA's "square root removed" variants:
- adam_sqr:     as adam with D = v_t / (1 - beta^t) + eps    the iterates are invariant to rescaling
                                                              the features, exactly when eps = 0)

With eps = 0 a coordinate whose D is 0 (no gradient seen yet) does not move (a pseudo-inverse).

The step needs the loss value (and, for Hutchinson, its graph), so `step(closure)` requires a closure
that returns the minibatch loss *without* calling backward: the optimizer differentiates it itself.
Gradients already in `.grad` are ignored. This is why these optimizers are not in the closure-free
optimizer registry (common.optim.registry): the registry's trainer calls step() with no loss."""
from __future__ import annotations

import math
from typing import Callable

import torch

from optrepro.curvature import hvp, rademacher

from .base import check_args, check_params

def closure_loss(closure, who: str) -> torch.Tensor:
    """The minibatch loss from a Polyak step's closure (which must not call backward), checked."""
    if closure is None:
        raise TypeError(f"{who}.step needs a closure returning the minibatch loss (not backpropagated): "
                        "the Polyak step size is computed from the loss value")
    with torch.enable_grad():
        loss = closure()
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"the closure must return the scalar loss tensor, got {type(loss).__name__}")
    return loss


PRECONDITIONERS = ("identity", "hutchinson", "adagrad", "adam", "adagrad_sqr", "adam_sqr")


class PreconditionedPolyak(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1.0, precond: str = "identity", f_star: float = 0.0,
                 max_step: float = math.inf, beta: float = 0.999, alpha: float = 1e-5, eps: float = 1e-8,
                 hutch_init: int = 100, seed: int = 0):
        check_args(lr=lr, lr_positive=True, eps=eps, alpha=alpha)
        if precond not in PRECONDITIONERS:
            raise ValueError(f"precond must be one of {', '.join(PRECONDITIONERS)}, got {precond!r}")
        if not (isinstance(beta, (int, float)) and 0 <= beta < 1):
            raise ValueError(f"beta must be in [0, 1), got {beta!r}")
        if not (isinstance(max_step, (int, float)) and max_step > 0):
            raise ValueError(f"max_step must be > 0 (inf: no cap), got {max_step!r}")
        if not (isinstance(f_star, (int, float)) and math.isfinite(f_star)):
            raise ValueError(f"f_star must be a finite number, got {f_star!r}")
        if not (isinstance(hutch_init, int) and hutch_init >= 1):
            raise ValueError(f"hutch_init must be an integer >= 1, got {hutch_init!r}")
        defaults = dict(lr=lr, precond=precond, f_star=f_star, max_step=max_step, beta=beta, alpha=alpha,
                        eps=eps, hutch_init=hutch_init)
        super().__init__(check_params(params), defaults)
        self._gen = torch.Generator().manual_seed(seed)
        self.last = {}
        """The last step's loss, ||g||^2_{D^-1} and gamma (for logging)."""

    # -- the preconditioner -------------------------------------------------------------------------
    def _hutch_sample(self, params, grads) -> list[torch.Tensor]:
        """z * (H z) for one Rademacher z (common.curvature), through the gradients' graph."""
        zs = [rademacher(p, self._gen) for p in params]
        return [z * h for z, h in zip(zs, hvp(None, params, zs, grads=grads))]

    def _diag(self, group, params, grads) -> list[torch.Tensor]:
        kind, beta, eps = group["precond"], group["beta"], group["eps"]
        out = []
        if kind == "hutchinson":
            if "D" not in self.state[params[0]]:
                acc = [torch.zeros_like(p) for p in params]
                for _ in range(group["hutch_init"]):
                    for a, s in zip(acc, self._hutch_sample(params, grads)):
                        a.add_(s)
                for p, a in zip(params, acc):
                    self.state[p]["D"] = a / group["hutch_init"]
            for p, s in zip(params, self._hutch_sample(params, grads)):
                D = self.state[p]["D"]
                D.mul_(beta).add_(s.detach(), alpha=1 - beta)
                out.append(D.abs().clamp(min=group["alpha"]))
            return out
        for p, g in zip(params, grads):
            st = self.state[p]
            if kind == "identity":
                out.append(torch.ones_like(p))
                continue
            st["step"] = st.get("step", 0) + 1
            v = st.setdefault("v", torch.zeros_like(p))
            g = g.detach()
            if kind.startswith("adagrad"):
                v.add_(g * g)
                m = v
            else:
                v.mul_(beta).add_(g * g, alpha=1 - beta)
                m = v / (1 - beta ** st["step"])
            out.append((m if kind.endswith("_sqr") else m.sqrt()) + eps)
        return out

    # -- the step -----------------------------------------------------------------------------------
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        loss = closure_loss(closure, "PreconditionedPolyak")
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        hutch = any(g["precond"] == "hutchinson" for g in self.param_groups)
        grads = torch.autograd.grad(loss, params, create_graph=hutch, allow_unused=True)
        by_param = dict(zip(params, grads))
        # one Polyak step for all groups together: the loss and ||g||^2_{D^-1} are global
        parts, norm2 = [], 0.0
        for group in self.param_groups:
            ps = [p for p in group["params"] if by_param.get(p) is not None]
            if not ps:
                continue
            gs = [by_param[p] for p in ps]
            Ds = self._diag(group, ps, gs)
            for p, g, D in zip(ps, gs, Ds):
                g = g.detach()
                dg = torch.where(D > 0, g / D, torch.zeros_like(g))
                norm2 += float((g * dg).sum())
                parts.append((group, p, dg))
        f = float(loss.detach())
        self.last = {"loss": f, "norm2": norm2, "gamma": 0.0}
        if norm2 <= 0 or not math.isfinite(norm2):
            return loss.detach()
        with torch.no_grad():
            for group, p, dg in parts:
                gamma = min(group["lr"] * max(f - group["f_star"], 0.0) / norm2, group["max_step"])
                p.sub_(dg, alpha=gamma)
            self.last["gamma"] = gamma
        return loss.detach()


# -- Polyak step sizes for momentum methods (Wang, Johansson and Zhang 2023) ------------------------------

MOMENTUM_FORMS = ("mag", "hb")


class PolyakMomentum(torch.optim.Optimizer):
    r"""A Polyak step size for a momentum method, in one of two forms (`form`):

    mag (ALR-SMAG, the moving-average-gradient form; the stochastic rule of Wang et al. 2023):

        d_t   = beta d_{t-1} + g_t                                   (d_0 = 0; a sum, not an average)
        eta_t = min(max_step, lr * (f_i(w_t) - f_star) / (c ||d_t||^2))
        w    <- w - eta_t d_t

    hb (heavy ball, x_{t+1} = x_t - eta_t g_t + beta (x_t - x_{t-1})), with the step that minimizes
    the convexity bound on the distance to a minimizer x*:

        ||x_{t+1} - x*||^2 <= ||x_t - x* + beta m_t||^2 - 2 eta (f(x_t) - f* + beta <g_t, m_t>) + eta^2 ||g_t||^2
        (m_t = x_t - x_{t-1}, using <g_t, x_t - x*> >= f(x_t) - f*), i.e.
        eta_t = min(max_step, lr * max(0, f(x_t) - f_star + beta <g_t, m_t>) / (c ||g_t||^2))

    The mag rule is the one both third-party implementations we read use (the step size and the
    d_t recursion agree); the hb rule is our derivation from the principle the paper states (Polyak's
    step minimizes the same bound with beta = 0), not checked against the paper's own equation. With
    beta = 0 both are SPS_max (Loizou et al. 2021) with constant c.

    step(closure) as PreconditionedPolyak: the closure returns the minibatch loss without calling
    backward. `last` holds the step's loss and eta (for logging)."""

    def __init__(self, params, beta: float = 0.9, form: str = "mag", lr: float = 1.0, c: float = 1.0,
                 f_star: float = 0.0, max_step: float = math.inf):
        check_args(lr=lr, lr_positive=True)
        if form not in MOMENTUM_FORMS:
            raise ValueError(f"form must be one of {', '.join(MOMENTUM_FORMS)}, got {form!r}")
        if not (isinstance(beta, (int, float)) and 0 <= beta < 1):
            raise ValueError(f"beta must be in [0, 1), got {beta!r}")
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
            raise ValueError(f"c must be a finite number > 0, got {c!r}")
        if not (isinstance(max_step, (int, float)) and max_step > 0):
            raise ValueError(f"max_step must be > 0 (inf: no cap), got {max_step!r}")
        if not (isinstance(f_star, (int, float)) and math.isfinite(f_star)):
            raise ValueError(f"f_star must be a finite number, got {f_star!r}")
        super().__init__(check_params(params), dict(beta=beta, form=form, lr=lr, c=c, f_star=f_star,
                                                    max_step=max_step))
        self.last = {}

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        loss = closure_loss(closure, "PolyakMomentum")
        f = float(loss.detach())
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        by_param = dict(zip(params, torch.autograd.grad(loss, params, allow_unused=True)))
        # one step size for all groups together: the loss and the norms are global (as in SPS)
        parts, norm2, inner = [], 0.0, 0.0
        for group in self.param_groups:
            for p in group["params"]:
                g = by_param.get(p)
                if g is None:
                    continue
                g, st = g.detach(), self.state[p]
                if group["form"] == "mag":
                    d = st.setdefault("d", torch.zeros_like(p)).mul_(group["beta"]).add_(g)
                else:
                    d = g
                    if "m" in st:
                        inner += group["beta"] * float((g * st["m"]).sum())
                norm2 += float((d * d).sum())
                parts.append((group, p, d))
        self.last = {"loss": f, "norm2": norm2, "eta": 0.0}
        if not parts:
            return loss.detach()
        with torch.no_grad():
            for group, p, d in parts:
                eta = 0.0
                if norm2 > 0 and math.isfinite(norm2):
                    num = f - group["f_star"] + (inner if group["form"] == "hb" else 0.0)
                    eta = min(group["max_step"], group["lr"] * max(num, 0.0) / (group["c"] * norm2))
                if group["form"] == "mag":
                    p.sub_(d, alpha=eta)
                else:
                    m = self.state[p].get("m")
                    step = -eta * d if m is None else m.mul(group["beta"]).sub_(d, alpha=eta)
                    p.add_(step)
                    self.state[p]["m"] = step
            self.last["eta"] = eta
        return loss.detach()
