"""Inexact hypergradients with an a posteriori error bound, and the methods that use them.

For a lower level that is mu-strongly convex in y, an approximate solution y~ with
||g_y(x, y~)|| <= mu * eps is within eps of y*(x), and CG stopped at ||g_yy q~ - f_y|| <= delta
gives the inexact hypergradient  h = f_x(y~) - g_xy(y~) q~.  Its distance to dF/dx is bounded by
(our derivation, term by term; q* = g_yy(y*)^{-1} f_y(y*)):

    ||h - dF/dx|| <= L_fx eps                                  f_x moves with y
                   + ||B~|| (delta / mu                         CG residual
                             + L_f eps / mu                     f_y moves with y
                             + L_H eps ||q*|| / mu)             g_yy^{-1} moves with y
                   + L_B eps ||q*||                             g_xy moves with y
    with ||q*|| <= (||f_y(y~)|| + L_f eps) / mu,

where B~ = g_xy(y~) (its operator norm), L_f, L_fx, L_H, L_B are Lipschitz constants in y of f_y,
f_x, g_yy and g_xy. A problem states them through `bound_constants(x, y)` (a dict with mu, L_g
(smoothness of g, for the inner step), L_f, L_fx, L_H, L_B, B_norm); tests check the bound holds
against the exact hypergradient.

The proven constants can be loose (L2Reg's L_H bound is ~5e4 times the slope met along random
directions), which asks for small accuracies; accelerated inner solves pay for them only
logarithmically. The authors' code estimates its constants numerically instead; we keep the
certified bound.

- `inner_agd`: Nesterov's accelerated gradient for a mu-strongly convex, L-smooth lower level,
  stopped when the gradient certifies ||y - y*|| <= eps.
- `inexact_hypergrad`: h, its bound omega, and the certified inner point.
- `maid` (Salehi, Mukherjee, Roberts & Ehrhardt 2023): the accuracies (eps, delta) shrink until
  omega <= (1 - eta) ||h|| (so -h is a descent direction); a backtracking line search accepts a
  step when an upper bound of the new F is below a lower bound of the old one by eta * step *
  ||h||^2 (so F truly decreases); after success the accuracies loosen by nu and the next trial
  step grows by 1 / rho, after a failed search they tighten by tau.
- `inexact_gd`: the a priori alternative it is compared with (HOAG-style): a fixed step and
  accuracies eps_k = eps0 / (k + 1)^decay chosen before the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from optrepro.bilevel import linsolve

BOUND_KEYS = ("mu", "L_g", "L_f", "L_fx", "L_H", "L_B", "B_norm")


def constants(prob, x, y) -> dict:
    if not hasattr(prob, "bound_constants"):
        raise ValueError(f"{type(prob).__name__} does not state the constants of its error bound "
                         f"(bound_constants(x, y)); inexact methods need them")
    c = prob.bound_constants(x, y)
    missing = [k for k in BOUND_KEYS if k not in c]
    if missing:
        raise ValueError(f"{type(prob).__name__}.bound_constants is missing {', '.join(missing)}")
    return c


def inner_agd(prob, x, y0, eps: float, max_steps: int = 100_000):
    """Accelerated gradient descent on g(x, .) from y0 until ||g_y|| <= mu * eps (which certifies
    ||y - y*(x)|| <= eps). Returns (y, dist, steps): dist = ||g_y|| / mu, the certified distance
    (<= eps; inf when max_steps ran out first). Constant momentum (sqrt(k) - 1) /
    (sqrt(k) + 1) with k = L_g / mu, step 1 / L_g."""
    c = constants(prob, x, y0)
    mu, L = c["mu"], c["L_g"]
    beta = (math.sqrt(L / mu) - 1) / (math.sqrt(L / mu) + 1)
    y_prev = y = y0.detach().clone()
    for k in range(max_steps):
        v = y + beta * (y - y_prev) if k else y
        _, gv = prob.grad_g(x, v)
        gn = float(gv.norm())
        if gn <= mu * eps:
            return v, gn / mu, k + 1
        y_prev, y = y, v - gv / L
    return y, math.inf, max_steps


@dataclass
class Inexact:
    grad: torch.Tensor
    bound: float
    """omega: a certified upper bound on ||grad - dF/dx|| (inf if the inner solve was not certified)."""
    y: torch.Tensor
    dist: float
    """Certified ||y - y*(x)||."""
    f_value: float
    fy_norm: float
    cg_residual: float


def error_bound(c: dict, eps: float, delta: float, fy_norm: float) -> float:
    mu = c["mu"]
    q_norm = (fy_norm + c["L_f"] * eps) / mu
    return (c["L_fx"] * eps + c["B_norm"] * (delta / mu + c["L_f"] * eps / mu + c["L_H"] * eps * q_norm / mu)
            + c["L_B"] * eps * q_norm)


def inexact_hypergrad(prob, x, y0, eps: float, delta: float, max_inner: int = 20_000) -> Inexact:
    """Solve the lower level to eps (warm start y0), g_yy q = f_y by CG to absolute residual delta,
    return h = f_x - g_xy q with its bound, from the accuracies reached (at most eps and delta)."""
    y, dist, _ = inner_agd(prob, x, y0, eps, max_inner)
    fx, fy = prob.grad_f(x, y)
    hvp, jvp_xy = prob.second_order(x, y)
    fy_norm = float(fy.norm())
    rel = delta / fy_norm if fy_norm > 0 else 1.0
    q, info = linsolve.cg(hvp, fy, iters=10 * y.numel(), tol=rel)
    h = fx - jvp_xy(q)
    res = info["residual"] * fy_norm
    omega = error_bound(constants(prob, x, y), dist, min(res, delta), fy_norm)
    with torch.no_grad():
        fval = float(prob.f(x, y))
    return Inexact(h, omega, y, dist, fval, fy_norm, res)


def _value_bounds(prob, x, y, eps: float, fval: float, fy_norm: float):
    """Lower and upper bounds of F(x) = f(x, y*) from y with ||y - y*|| <= eps (f_y L_f-Lipschitz)."""
    L = constants(prob, x, y)["L_f"]
    slack = fy_norm * eps + 0.5 * L * eps ** 2
    return fval - slack, fval + slack


def maid(prob, x, y, step=1.0, eps=1e-1, delta=1e-1, eta=1e-4, rho=0.5, tau=0.5, nu=1.05, max_backtracks=10,
         max_retries=3, max_inner=20_000, eps_min=1e-10):
    """MAID as a generator of outer iterations (see the module docstring). `step`, `eps`, `delta`
    are the initial step size and accuracies; the paper's point is that they need no tuning.
    Accuracies stop shrinking at eps_min (float64 gradients cannot certify much below it)."""
    while True:
        accepted = False
        for _ in range(max_retries):
            # 1) accuracies tight enough that -h is a certified descent direction
            while True:
                hg = inexact_hypergrad(prob, x, y, eps, delta, max_inner)
                hn = float(hg.grad.norm())
                if hg.bound <= (1 - eta) * hn or eps <= eps_min:
                    break
                eps, delta = max(tau * eps, eps_min), max(tau * delta, eps_min)
            y = hg.y
            lo_old, _ = _value_bounds(prob, x, y, hg.dist, hg.f_value, hg.fy_norm)
            # 2) backtracking on certified bounds of F
            a = step
            for _ in range(max_backtracks):
                x_new = x - a * hg.grad
                y_new, dist, _ = inner_agd(prob, x_new, y, eps, max_inner)
                _, fy_new = prob.grad_f(x_new, y_new)
                with torch.no_grad():
                    f_new = float(prob.f(x_new, y_new))
                _, hi_new = _value_bounds(prob, x_new, y_new, dist, f_new, float(fy_new.norm()))
                if hi_new - lo_old <= -eta * a * hn ** 2:
                    accepted = True
                    break
                a *= rho
            if accepted:
                x, y = x_new, y_new
                step = a / rho
                eps, delta = nu * eps, nu * delta
                break
            eps, delta = max(tau * eps, eps_min), max(tau * delta, eps_min)
        yield {"x": x, "y": y, "inner_residual": prob.inner_residual(x, y), "eps": eps, "step": step,
               "bound": hg.bound, "accepted": accepted}


def inexact_gd(prob, x, y, step=1.0, eps=1e-1, decay=2.0, max_inner=20_000):
    """Fixed step, accuracies fixed in advance: eps_k = delta_k = eps / (k + 1)^decay. Its bound
    is recorded only: nothing adapts to it."""
    k = 0
    while True:
        e = eps / (k + 1) ** decay
        hg = inexact_hypergrad(prob, x, y, e, e, max_inner)
        x, y = x - step * hg.grad, hg.y
        k += 1
        yield {"x": x, "y": y, "inner_residual": prob.inner_residual(x, y), "eps": e, "step": step,
               "bound": hg.bound, "accepted": True}
