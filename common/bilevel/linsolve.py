"""Matrix-free linear solvers for hypergradients: H v = b with H given only as a product v -> H v.

Both return (v, info) where info = {"iters", "residual"} with residual = ||H v - b|| / ||b||, so a
caller can record how well the system was solved. Failures are errors with a message, never
silent garbage:
- CG needs H symmetric positive definite. A direction with p^T H p <= 0 raises IndefiniteHessian,
  unless `damping` > 0 is given, which solves (H + damping I) v = b instead (documented bias).
- Neumann needs the spectral radius of (I - alpha H) below 1. A residual that grows past
  `blowup` times the initial one raises NotConverged (alpha too large, or H indefinite).
"""
from __future__ import annotations

from typing import Callable

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]


class BilevelError(ArithmeticError):
    """A hypergradient cannot be computed as asked; the message says why and what to change."""


class IndefiniteHessian(BilevelError):
    pass


class NotConverged(BilevelError):
    pass


def _rel(r: torch.Tensor, b: torch.Tensor) -> float:
    nb = float(b.norm())
    return float(r.norm()) / (nb if nb > 0 else 1.0)


def cg(matvec: Matvec, b: torch.Tensor, iters: int = 100, tol: float = 1e-10, damping: float = 0.0,
       x0: torch.Tensor | None = None):
    """Conjugate gradient on (H + damping I) v = b. Stops at relative residual <= tol or `iters`."""
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    A = (lambda v: matvec(v) + damping * v) if damping > 0 else matvec
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - A(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = r.dot(r)
    k = 0
    while k < iters and _rel(r, b) > tol:
        Ap = A(p)
        pAp = p.dot(Ap)
        if not pAp > 0:
            raise IndefiniteHessian(
                f"CG met a direction with p^T H p = {float(pAp):.3e} <= 0 at iteration {k}: the inner "
                f"Hessian is not positive definite (the lower level has no unique solution, or is "
                f"nonconvex here). Pass damping > 0 to solve (H + damping I) v = b, or use a "
                f"first-order method (F2SA, V-PBGD).")
        a = rr / pAp
        x = x + a * p
        r = r - a * Ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
        k += 1
    return x, {"iters": k, "residual": _rel(b - A(x), b)}


def neumann(matvec: Matvec, b: torch.Tensor, terms: int = 20, alpha: float = 0.1, blowup: float = 1e3):
    """Truncated Neumann series: v = alpha * sum_{j=0}^{terms} (I - alpha H)^j b, i.e. H^{-1} b
    when alpha < 1 / lambda_max(H) and terms -> infinity. terms=0 gives alpha * b."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    p = b.clone()
    v = b.clone()
    r0 = None
    for j in range(terms):
        p = p - alpha * matvec(p)
        v = v + p
        if j % 5 == 4 or j == terms - 1:
            r = _rel(b - alpha * matvec(v), b)
            r0 = r if r0 is None else r0
            if not r < blowup * max(r0, 1.0):
                raise NotConverged(
                    f"Neumann series diverges (relative residual {r:.3e} after {j + 1} terms): alpha "
                    f"= {alpha} is above 1 / lambda_max(H) or H is indefinite. Lower alpha.")
    v = alpha * v
    return v, {"iters": terms, "residual": _rel(b - matvec(v), b)}


def dense(matvec: Matvec, b: torch.Tensor, damping: float = 0.0, iters=None, tol=None):
    """Materialize H column by column and solve exactly (small problems and tests only;
    iters and tol are accepted so callers can switch solvers, and do not apply)."""
    n = b.numel()
    eye = torch.eye(n, dtype=b.dtype, device=b.device)
    H = torch.stack([matvec(eye[i]) for i in range(n)], 1) + damping * eye
    v = torch.linalg.lstsq(H, b[:, None]).solution[:, 0]
    return v, {"iters": n, "residual": _rel(H @ v - b, b)}


SOLVERS = {"cg": cg, "neumann": neumann, "dense": dense}


def solve(method: str, matvec: Matvec, b: torch.Tensor, **kw):
    if method not in SOLVERS:
        raise ValueError(f"linear solver '{method}' unknown; valid: {', '.join(SOLVERS)}")
    return SOLVERS[method](matvec, b, **kw)
