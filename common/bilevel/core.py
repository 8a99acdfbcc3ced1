"""Bilevel problems and hypergradients behind one interface.

    min_x  F(x) = f(x, y*(x))    s.t.   y*(x) = argmin_y g(x, y)

x (upper, hyperparameters) and y (lower, model parameters) are flat 1-D tensors; a problem that
has a network unflattens y itself. The hypergradient is

    dF/dx = f_x - g_xy [g_yy]^{-1} f_y                                   (implicit function theorem)

Methods (every one returns a HyperGrad with the inner residual ||g_y|| so runs can record it):
- `unrolled`: reverse mode through K steps of gradient descent on g (ITD).
- `implicit`: the formula above with g_yy^{-1} f_y from CG, Neumann or a dense solve (AID).
- `penalty_grads`: first-order value-function penalty f + lam (g(x, y) - g(x, z)), no second
  derivatives (F2SA, V-PBGD): its x-gradient tends to dF/dx as lam -> inf with y, z solved.

Each problem counts its oracle calls: `grad` (one gradient of f or g, both arguments) and `hvp`
(one Hessian- or Jacobian-vector product of g). Papers compare methods at equal calls.
"""
from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from dataclasses import dataclass

import torch

from optrepro.bilevel import linsolve
from optrepro.bilevel.linsolve import NotConverged


class BudgetExhausted(Exception):
    """Raised by an oracle call once `Bilevel.limit` calls have been made (a hard budget: an
    algorithm whose outer iteration can cost many calls is stopped mid-iteration, and its last
    completed iterate is the result)."""


class Bilevel:
    """Subclass and define f(x, y) and g(x, y) (scalars). Optionally `y_star(x)` and
    `hypergrad_exact(x)` when a closed form exists (tests use them)."""

    limit: int | None = None

    def __init__(self):
        self.calls = Counter()

    def _count(self, kind: str):
        if self.limit is not None and sum(self.calls.values()) >= self.limit:
            raise BudgetExhausted(f"{self.limit} oracle calls")
        self.calls[kind] += 1

    def f(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # oracles -------------------------------------------------------------------------------
    def _grad(self, fn, x, y):
        self._count("grad")
        with torch.enable_grad():
            x_, y_ = x.detach().requires_grad_(), y.detach().requires_grad_()
            gx, gy = torch.autograd.grad(fn(x_, y_), (x_, y_), allow_unused=True)
        return (torch.zeros_like(x) if gx is None else gx), (torch.zeros_like(y) if gy is None else gy)

    def grad_f(self, x, y):
        return self._grad(self.f, x, y)

    def grad_g(self, x, y):
        return self._grad(self.g, x, y)

    def second_order(self, x, y):
        """(hvp_yy, jvp_xy): v -> g_yy v and v -> g_xy v (a vector like x), sharing one graph of
        g_y at (x, y). Building that graph counts one `grad` call, each product one `hvp` call."""
        self._count("grad")
        x_, y_ = x.detach().requires_grad_(), y.detach().requires_grad_()
        with torch.enable_grad():
            gy = torch.autograd.grad(self.g(x_, y_), y_, create_graph=True)[0]

        def hvp(v):
            self._count("hvp")
            with torch.enable_grad():
                return torch.autograd.grad(gy, y_, v, retain_graph=True)[0].detach()

        def jvp_xy(v):
            self._count("hvp")
            with torch.enable_grad():
                out = torch.autograd.grad(gy, x_, v, retain_graph=True, allow_unused=True)[0]
            return torch.zeros_like(x) if out is None else out.detach()

        return hvp, jvp_xy

    def inner_residual(self, x, y) -> float:
        """||g_y(x, y)||: zero at an exact lower-level solution. Not counted as an oracle call."""
        with torch.enable_grad():
            y_ = y.detach().requires_grad_()
            return float(torch.autograd.grad(self.g(x.detach(), y_), y_)[0].norm())


@dataclass
class HyperGrad:
    grad: torch.Tensor
    inner_residual: float
    """||g_y|| at the y the hypergradient was taken at (0 = exact lower-level solution)."""
    lin_residual: float = 0.0
    """||g_yy v - f_y|| / ||f_y|| of the linear solve (implicit methods)."""
    lin_iters: int = 0
    y: torch.Tensor | None = None


def inner_gd(prob: Bilevel, x, y0, steps: int, lr: float, tol: float = 0.0):
    """Gradient descent on g(x, .) from y0: `steps` steps, or fewer once ||g_y|| <= tol."""
    y = y0.detach().clone()
    for _ in range(steps):
        _, gy = prob.grad_g(x, y)
        if tol and float(gy.norm()) <= tol:
            break
        y = y - lr * gy
    return y


def implicit(prob: Bilevel, x, y, solver: str = "cg", check_tol: float | None = None, **solver_kw) -> HyperGrad:
    """AID: f_x - g_xy v with g_yy v = f_y, at the given (approximate) inner solution y.
    `check_tol`: raise NotConverged if ||g_y(x, y)|| exceeds it (otherwise it is only recorded)."""
    res = prob.inner_residual(x, y)
    if check_tol is not None and not res <= check_tol:
        raise NotConverged(f"inner problem not solved: ||g_y|| = {res:.3e} > {check_tol:.1e}; the "
                           f"implicit hypergradient assumes g_y = 0. Give the inner solver more steps.")
    fx, fy = prob.grad_f(x, y)
    hvp, jvp_xy = prob.second_order(x, y)
    v, info = linsolve.solve(solver, hvp, fy, **solver_kw)
    return HyperGrad(fx - jvp_xy(v), res, info["residual"], info["iters"], y)


def unrolled(prob: Bilevel, x, y0, steps: int, lr: float, truncate: int | None = None) -> HyperGrad:
    """ITD: differentiate f(x, y_K(x)) through K = `steps` gradient steps on g from y0 (reverse
    mode, the whole trajectory kept in memory). `truncate`: backpropagate through the last steps
    only. Counts K `grad` calls forward and K `hvp` calls for the backward pass."""
    truncate = steps if truncate is None else truncate
    with torch.enable_grad():
        x_ = x.detach().requires_grad_()
        y = y0.detach().clone()
        for k in range(steps):
            tracked = k >= steps - truncate
            if not tracked:
                y = y.detach()
            y.requires_grad_(True)
            gy = torch.autograd.grad(prob.g(x_ if tracked else x_.detach(), y), y, create_graph=tracked)[0]
            y = y - lr * gy
        prob.calls["grad"] += steps + 1
        prob.calls["hvp"] += truncate
        out = prob.f(x_, y)
        hg = torch.autograd.grad(out, x_, allow_unused=True)[0]
    hg = torch.zeros_like(x) if hg is None else hg
    yK = y.detach()
    return HyperGrad(hg.detach(), prob.inner_residual(x, yK), y=yK)


def penalty_grads(prob: Bilevel, x, y, z, lam: float):
    """First-order value-function penalty L(x, y) = f(x, y) + lam (g(x, y) - g(x, z)) with z an
    approximate argmin of g(x, .): returns (L_x, L_y). L_x = f_x + lam (g_x(x, y) - g_x(x, z)) is
    F2SA's hypergradient estimate; as lam grows and y minimizes f/lam + g, it tends to dF/dx."""
    fx, fy = prob.grad_f(x, y)
    gx_y, gy_y = prob.grad_g(x, y)
    gx_z, _ = prob.grad_g(x, z)
    return fx + lam * (gx_y - gx_z), fy + lam * gy_y


class _Saved:
    __slots__ = ("t", "__weakref__")

    def __init__(self, t):
        self.t = t


@contextlib.contextmanager
def saved_bytes():
    """Peak bytes of tensors held by autograd for backward inside the block: the memory reverse
    mode needs (deterministic, unlike allocator peaks on CPU). A storage counts while at least
    one graph slot holds it, once however many slots share it. Yields a dict: 'bytes' (peak)."""
    out = {"bytes": 0}
    live: dict = {}  # storage address -> [slots holding it, nbytes]
    cur = [0]

    def release(ptr):
        ent = live[ptr]
        ent[0] -= 1
        if ent[0] == 0:
            cur[0] -= ent[1]
            del live[ptr]

    def pack(t):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr in live:
            live[ptr][0] += 1
        else:
            live[ptr] = [1, st.nbytes()]
            cur[0] += st.nbytes()
            out["bytes"] = max(out["bytes"], cur[0])
        w = _Saved(t)
        weakref.finalize(w, release, ptr)
        return w

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda w: w.t):
        yield out
