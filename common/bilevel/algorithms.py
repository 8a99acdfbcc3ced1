"""Bilevel algorithms as outer loops over a `Bilevel` problem, compared at equal oracle calls.

Every algorithm is a generator function `algo(prob, x, y, **hp)` that yields after each outer
iteration with its current (x, y) in a dict; `run()` drives it until the problem's oracle count
(gradients + Hessian/Jacobian-vector products, each counts 1) reaches the budget, and records a
curve. Baselines every paper's table can use live here, beside the papers' own methods:

| name       | hypergradient                                | lower level per outer step          |
|------------|----------------------------------------------|-------------------------------------|
| aid_cg     | implicit, CG with `cg_iters`                 | `inner_steps` GD steps, warm start  |
| stocbio    | implicit, Neumann with `neumann_terms` (AID-Neumann; Ji et al. 2021) | same |
| itd        | unrolled through `inner_steps` GD steps      | the unrolled steps, warm start      |
| ttsa       | implicit, Neumann (Hong et al. 2023)         | one GD step (two time scales)       |
| ma_soba    | f_x - g_xy v, v one step on the linear system; moving-average x update (Chen et al. 2023) | one GD step |
| f2sa       | penalty f_x + lam (g_x(x,y) - g_x(x,z)), lam += lam_step (Kwon et al. 2023) | `inner_steps` on y (f/lam + g) and on z (g) |
| v_pbgd     | joint GD on (x, y) of f + gamma (g(x,y) - g(x,z)) (Shen & Chen 2023) | `inner_steps` on z |
| maid       | inexact implicit (CG to delta), certified error bound; accuracies and step adapt (Salehi et al. 2023; common.bilevel.inexact) | accelerated GD to accuracy eps |
| inexact_gd | the same hypergradient with a priori accuracies eps0 / (k+1)^decay and a fixed step (HOAG-style) | same |
| bo_rep     | f_x - g_xy v, v one step on the linear system; normalized momentum on x; y refined at start (`init_steps`) and updated every `period` iterations with `inner_steps` steps (Hao et al. 2024) | periodic |
"""
from __future__ import annotations

import math
import time

import torch

from optrepro.bilevel.core import Bilevel, BudgetExhausted, implicit, inner_gd, penalty_grads, unrolled
from optrepro.bilevel.inexact import inexact_gd, maid


def _aid(prob, x, y, outer_lr, inner_lr, inner_steps, solver, **skw):
    while True:
        y = inner_gd(prob, x, y, inner_steps, inner_lr)
        h = implicit(prob, x, y, solver=solver, **skw)
        x = x - outer_lr * h.grad
        yield {"x": x, "y": y, "inner_residual": h.inner_residual, "lin_residual": h.lin_residual}


def aid_cg(prob, x, y, outer_lr=1.0, inner_lr=0.1, inner_steps=10, cg_iters=10, damping=0.0):
    return _aid(prob, x, y, outer_lr, inner_lr, inner_steps, "cg", iters=cg_iters, damping=damping)


def stocbio(prob, x, y, outer_lr=1.0, inner_lr=0.1, inner_steps=10, neumann_terms=10, neumann_alpha=None):
    return _aid(prob, x, y, outer_lr, inner_lr, inner_steps, "neumann", terms=neumann_terms,
                alpha=inner_lr if neumann_alpha is None else neumann_alpha)


def itd(prob, x, y, outer_lr=1.0, inner_lr=0.1, inner_steps=10):
    while True:
        h = unrolled(prob, x, y, inner_steps, inner_lr)
        x, y = x - outer_lr * h.grad, h.y
        yield {"x": x, "y": y, "inner_residual": h.inner_residual}


def ttsa(prob, x, y, outer_lr=0.1, inner_lr=0.1, neumann_terms=10, neumann_alpha=None):
    return _aid(prob, x, y, outer_lr, inner_lr, 1, "neumann", terms=neumann_terms,
                alpha=inner_lr if neumann_alpha is None else neumann_alpha)


def _linear_system_step(prob, x, y, v, nu):
    """One gradient step on v -> 1/2 v^T g_yy v - f_y^T v, and the hypergradient estimate
    f_x - g_xy v at the old v (SOBA's and BO-REP's estimator)."""
    fx, fy = prob.grad_f(x, y)
    hvp, jvp_xy = prob.second_order(x, y)
    hg = fx - jvp_xy(v)
    return v - nu * (hvp(v) - fy), hg


def ma_soba(prob, x, y, outer_lr=1.0, inner_lr=0.1, nu=0.1, avg=0.1):
    v, m = torch.zeros_like(y), torch.zeros_like(x)
    while True:
        y = inner_gd(prob, x, y, 1, inner_lr)
        v, hg = _linear_system_step(prob, x, y, v, nu)
        m = (1 - avg) * m + avg * hg
        x = x - outer_lr * m
        yield {"x": x, "y": y, "inner_residual": prob.inner_residual(x, y)}


def bo_rep(prob, x, y, outer_lr=0.1, inner_lr=0.1, inner_steps=10, init_steps=100, period=5, nu=0.1, beta=0.9,
           estimator="linear_system", neumann_terms=10):
    """estimator: 'linear_system' (v carried across iterations and moved one step on
    g_yy v = f_y, as the authors' hyper-cleaning code does) or 'neumann' (a fresh Neumann
    series with `neumann_terms` terms and step nu every iteration, stocBiO's estimator)."""
    if estimator not in ("linear_system", "neumann"):
        raise ValueError(f"estimator '{estimator}' unknown; valid: linear_system, neumann")
    v, m = torch.zeros_like(y), torch.zeros_like(x)
    y = inner_gd(prob, x, y, init_steps, inner_lr)  # initialization refinement
    t = 0
    while True:
        if t > 0 and t % period == 0:  # periodic lower-level updates
            y = inner_gd(prob, x, y, inner_steps, inner_lr)
        if estimator == "neumann":
            hg = implicit(prob, x, y, solver="neumann", terms=neumann_terms, alpha=nu).grad
        else:
            v, hg = _linear_system_step(prob, x, y, v, nu)
        m = beta * m + (1 - beta) * hg
        x = x - outer_lr * m / (m.norm() + 1e-12)  # normalized momentum
        t += 1
        yield {"x": x, "y": y, "inner_residual": prob.inner_residual(x, y)}


def f2sa(prob, x, y, outer_lr=1.0, inner_lr=0.1, inner_steps=10, lam0=1.0, lam_step=0.1, lam_max=100.0):
    z, lam = y.clone(), lam0
    while True:
        for _ in range(inner_steps):
            _, gz = prob.grad_g(x, z)
            _, fy = prob.grad_f(x, y)
            _, gy = prob.grad_g(x, y)
            z = z - inner_lr * gz
            y = y - inner_lr * (fy / lam + gy)  # GD on (f + lam g) / lam: step size inner_lr / lam
        gx, _ = penalty_grads(prob, x, y, z, lam)
        x = x - outer_lr * gx
        lam = min(lam + lam_step, lam_max)
        yield {"x": x, "y": z, "y_penalty": y, "lam": lam, "inner_residual": prob.inner_residual(x, z)}


def v_pbgd(prob, x, y, outer_lr=0.1, inner_lr=0.1, inner_steps=10, gamma=10.0, y_lr=None, output="y"):
    """y_lr defaults to outer_lr (the paper's single step size on the joint variable).
    output: which lower-level variable is reported as the model. 'y' (the paper's output) solves
    f / gamma + g and so has seen the upper-level (validation) data with weight 1/gamma; 'z'
    minimizes g(x, .) alone: the fair choice when the lower level has a unique solution and the
    model is evaluated on held-out data (hyper-cleaning)."""
    if output not in ("y", "z"):
        raise ValueError(f"output '{output}' unknown; valid: y, z")
    z = y.clone()
    y_lr = outer_lr if y_lr is None else y_lr
    while True:
        z = inner_gd(prob, x, z, inner_steps, inner_lr)
        gx, gy = penalty_grads(prob, x, y, z, gamma)
        x, y = x - outer_lr * gx, y - y_lr * gy
        yield {"x": x, "y": y if output == "y" else z, "y_penalty": y, "z": z,
               "inner_residual": prob.inner_residual(x, y if output == "y" else z)}


ALGORITHMS = {"aid_cg": aid_cg, "stocbio": stocbio, "itd": itd, "ttsa": ttsa, "ma_soba": ma_soba,
              "f2sa": f2sa, "v_pbgd": v_pbgd, "bo_rep": bo_rep, "maid": maid, "inexact_gd": inexact_gd}


def run(prob: Bilevel, algo: str, budget: int, hp: dict, x0=None, y0=None, record_every: int = 0,
        max_outer: int = 10**9, monitor=None, hard_budget: bool = False) -> dict:
    """Run `algo` until prob.calls reaches `budget` oracle calls (or max_outer iterations).
    Returns the final state and a curve of (calls, upper objective f(x, y), inner residual),
    recorded each time the oracle count passes a multiple of `record_every` calls.
    `monitor(state)` runs after every outer iteration; its oracle calls do not count.
    hard_budget: stop at exactly `budget` calls, inside an outer iteration if need be (the result is
    the last completed iteration); otherwise the iteration that crosses the budget completes."""
    if algo not in ALGORITHMS:
        from optrepro.config import closest
        raise ValueError(f"algorithm '{algo}' unknown{closest(algo, ALGORITHMS)}; valid: {', '.join(ALGORITHMS)}")
    prob.calls.clear()
    x = prob.x0() if x0 is None else x0
    y = prob.y0() if y0 is None else y0
    gen = ALGORITHMS[algo](prob, x, y, **hp)
    curve, st, k, t0 = [], {"x": x, "y": y, "inner_residual": math.nan}, 0, time.perf_counter()
    max_res = 0.0
    prob.limit = budget if hard_budget else None
    while sum(prob.calls.values()) < budget and k < max_outer:
        try:
            st = next(gen)
        except BudgetExhausted:
            break
        k += 1
        max_res = max(max_res, st.get("inner_residual", 0.0))
        if monitor is not None:
            saved, limit, prob.limit = prob.calls.copy(), prob.limit, None
            monitor(st)
            prob.calls, prob.limit = saved, limit
        if not torch.isfinite(st["x"]).all():
            break
        if record_every and sum(prob.calls.values()) >= record_every * (len(curve) + 1):
            with torch.no_grad():
                curve.append((sum(prob.calls.values()), float(prob.f(st["x"], st["y"])), st["inner_residual"]))
    prob.limit = None
    if k == 0:  # a hard budget spent inside the first iteration: the start is the result
        st["inner_residual"] = prob.inner_residual(st["x"], st["y"])
    out = {"x": st["x"], "y": st["y"], "outer_iters": k, "calls": sum(prob.calls.values()),
           "grad_calls": prob.calls["grad"], "hvp_calls": prob.calls["hvp"], "time_s": time.perf_counter() - t0,
           "inner_residual": st["inner_residual"], "inner_residual_max": max_res, "curve": curve}
    return out
