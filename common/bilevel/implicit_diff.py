"""`custom_root`: make any solver differentiable through its optimality condition.

    @custom_root(optimality_fn)            # optimality_fn(y, *theta) = 0 at the solution
    def solve(y0, *theta): ...             # any solver: loops, scipy, closed form; not traced

    y = solve(y0, *theta)                  # y carries gradients w.r.t. every theta

Backward (implicit function theorem): with A = dF/dy and B = dF/dtheta at (y*, theta), the
vector-Jacobian product of an incoming cotangent w is  -B^T u  where  A^T u = w.
A^T u is one reverse-mode product of F, so F never has to be materialized. For F = grad_y g
(an argmin), A is the symmetric Hessian and CG applies; for a general root F use
`solve="normal_cg"` (CG on A^T A) or `"dense"`.

After each backward, `solve.info` holds the linear solve's residual and iterations, and
`solve.info["optimality"]` the norm of F at the returned point (recorded at forward time):
the hypergradient is only as good as both. `check_tol` turns a large ||F|| into an error.
"""
from __future__ import annotations

import functools

import torch

from optrepro.bilevel import linsolve
from optrepro.bilevel.linsolve import NotConverged


def custom_root(optimality_fn, solve: str = "cg", check_tol: float | None = None, **solver_kw):
    if solve not in ("cg", "neumann", "dense", "normal_cg"):
        raise ValueError(f"solve='{solve}' unknown; valid: cg, neumann, dense, normal_cg")

    def decorator(solver):
        info: dict = {}

        class _Root(torch.autograd.Function):
            @staticmethod
            def forward(ctx, y, *theta):
                ctx.save_for_backward(y, *theta)
                return y.clone()

            @staticmethod
            def backward(ctx, w):
                y, *theta = ctx.saved_tensors
                with torch.enable_grad():
                    y_ = y.detach().requires_grad_()
                    th = [t.detach().requires_grad_() for t in theta]
                    F = optimality_fn(y_, *th)

                    def At(u):  # A^T u
                        return torch.autograd.grad(F, y_, u, retain_graph=True)[0]

                    if solve == "normal_cg":  # A^T u = w with u = A s and (A^T A) s = w
                        s_, st = linsolve.cg(lambda v: At(_jvp(F, y_, v)), w.reshape(F.shape), **solver_kw)
                        u = _jvp(F, y_, s_)
                    else:
                        u, st = linsolve.solve(solve, At, w.reshape(F.shape), **solver_kw)
                    grads = torch.autograd.grad(F, th, -u, allow_unused=True)
                info.update(lin_residual=st["residual"], lin_iters=st["iters"])
                return (None, *grads)

        @functools.wraps(solver)
        def wrapped(y0, *theta):
            with torch.no_grad():
                y = solver(y0, *[t.detach() for t in theta])
            with torch.enable_grad():  # y may need a graph: F is often an autograd gradient
                opt = float(optimality_fn(y.detach().requires_grad_(), *[t.detach() for t in theta]).detach().norm())
            info.clear()
            info["optimality"] = opt
            if check_tol is not None and not opt <= check_tol:
                raise NotConverged(f"{solver.__name__}: ||F(y*, theta)|| = {opt:.3e} > {check_tol:.1e}; "
                                   f"the solver did not reach the root, so the implicit gradient would be wrong.")
            return _Root.apply(y.detach(), *theta)

        wrapped.info = info
        return wrapped

    return decorator


def _jvp(F, y, v):
    """A v = dF/dy v by the double-vjp trick (F already computed from y with a graph)."""
    z = torch.zeros_like(F, requires_grad=True)
    g = torch.autograd.grad(F, y, z, create_graph=True, retain_graph=True)[0]
    return torch.autograd.grad(g, z, v, retain_graph=True)[0]
