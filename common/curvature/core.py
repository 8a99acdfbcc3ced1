"""Implementations for common.curvature (see its docstring). Tensors are torch; parameters are a
list of tensors (vectors `v` are lists of the same shapes) unless a function says otherwise."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch


# -- Hessian-vector products --------------------------------------------------------------------------

def hvp(loss: torch.Tensor | None, params: Sequence[torch.Tensor], v: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor] | None = None, retain_graph: bool = True) -> list[torch.Tensor]:
    """H v by double backward: grads of <grad loss, v>. Pass `grads` (computed with create_graph=True)
    to reuse them for several v; otherwise they are taken from `loss`."""
    if grads is None:
        grads = torch.autograd.grad(loss, params, create_graph=True)
    out = torch.autograd.grad(grads, params, grad_outputs=list(v), retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if h is None else h for p, h in zip(params, out)]


def hvp_fwd(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """H v by forward-over-reverse (torch.func.jvp of torch.func.grad), for f of one tensor."""
    return torch.func.jvp(torch.func.grad(f), (x,), (v,))[1]


# -- Hutchinson estimates -----------------------------------------------------------------------------

def rademacher(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """+-1 with probability 1/2 each, shaped and typed like `like` (drawn on the CPU, moved to its device)."""
    z = torch.randint(0, 2, like.shape, generator=generator, dtype=torch.int64)
    return z.to(device=like.device, dtype=like.dtype).mul_(2).sub_(1)


def hutchinson_diag(hv: Callable[[list], list], like: Sequence[torch.Tensor], samples: int = 1,
                    generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """mean over `samples` Rademacher z of z * (H z): unbiased for diag(H). `hv(z) -> H z`."""
    acc = [torch.zeros_like(p) for p in like]
    for _ in range(samples):
        zs = [rademacher(p, generator) for p in like]
        for a, z, h in zip(acc, zs, hv(zs)):
            a.add_(z * h.detach())
    return [a / samples for a in acc]


def hutchinson_trace(hv: Callable[[list], list], like: Sequence[torch.Tensor], samples: int = 1,
                     generator: torch.Generator | None = None) -> float:
    """mean over `samples` Rademacher z of z^T H z: unbiased for tr(H)."""
    return float(sum(d.sum() for d in hutchinson_diag(hv, like, samples, generator)))


# -- Gauss-Newton -------------------------------------------------------------------------------------

def ggn_vp(model_fn: Callable[[torch.Tensor], torch.Tensor], loss_fn: Callable[[torch.Tensor], torch.Tensor],
           x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """G v = J^T H_L J v, J the Jacobian of the outputs `model_fn(x)` in x and H_L the Hessian of
    `loss_fn` in the outputs (for softmax cross-entropy and squared error this is also the Fisher)."""
    out, jv = torch.func.jvp(model_fn, (x,), (v,))
    hjv = hvp_fwd(loss_fn, out.detach(), jv)
    _, vjp = torch.func.vjp(model_fn, x)
    return vjp(hjv)[0]


def sampled_label_loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
    """Mean cross-entropy of model(x)'s logits (last dim: classes) against labels drawn from the
    model's own softmax: the Gauss-Newton-Bartlett estimator's loss. With ĝ its gradient over B
    examples, E[B ĝ ⊙ ĝ] is the diagonal of the Gauss-Newton matrix of the mean cross-entropy
    (Sophia-G's curvature estimate)."""
    logits = model(x)
    logits = logits.reshape(-1, logits.shape[-1])
    with torch.no_grad():
        y = torch.multinomial(torch.softmax(logits.detach().float(), -1).cpu(), 1, generator=generator).squeeze(1)
    return torch.nn.functional.cross_entropy(logits, y.to(logits.device))


def gn_direction(J: torch.Tensor, Q: torch.Tensor, r: torch.Tensor, lam: float, b: int) -> torch.Tensor:
    """The Levenberg-Marquardt direction d = -(J'QJ / b + lam I)^-1 g, g = J'r / b, computed in the
    space of the m = b*c outputs by the Duncan-Guttman identity: d = -J' (Q J J' + b lam I_m)^-1 r
    (Exact Gauss-Newton; O(m^2 p + m^3) instead of O(p^3)). J: m x p Jacobian of the outputs, Q: m x m
    Hessian of the per-example losses in the outputs (block diagonal), r: m gradient of the summed
    loss in the outputs."""
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    m = J.shape[0]
    A = Q @ (J @ J.T) + b * lam * torch.eye(m, dtype=J.dtype, device=J.device)
    return -(J.T @ torch.linalg.solve(A, r))


# -- matrix functions ---------------------------------------------------------------------------------

def _check_square(A: torch.Tensor) -> None:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"need a square matrix, got shape {tuple(A.shape)}")


def sym_power(A: torch.Tensor, p: float, damping: float = 0.0, floor: float = 0.0) -> torch.Tensor:
    """(A + damping I)^p for symmetric PSD A by eigh; eigenvalues below `floor` are raised to it first
    (negative p needs a positive floor or damping for a singular A)."""
    _check_square(A)
    A = (A + A.T) / 2
    lam, Q = torch.linalg.eigh(A + damping * torch.eye(len(A), dtype=A.dtype, device=A.device))
    lam = lam.clamp(min=floor)
    if p < 0 and not bool((lam > 0).all()):
        raise ValueError("a negative power of a singular matrix: add damping or a floor")
    return (Q * lam.pow(p)) @ Q.T


def inverse_root_newton(A: torch.Tensor, p: int, iters: int = 100, tol: float = 1e-12,
                        damping: float = 0.0) -> tuple[torch.Tensor, int]:
    """(A + damping I)^(-1/p) for symmetric positive definite A by the coupled Newton iteration
    (Guo and Higham 2006; Shampoo's inverse roots): X_0 = z^(1/p) I, M_0 = z A with
    z = (p + 1) / (2 ||A||_2), then T = ((p + 1) I - M) / p, X <- X T, M <- T^p M, keeping
    M = X^p A, until max |M - I| < tol (M -> I, so X -> A^(-1/p)). Returns (X, iterations used)."""
    _check_square(A)
    if not (isinstance(p, int) and p >= 1):
        raise ValueError(f"p must be an integer >= 1, got {p!r}")
    n = len(A)
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    A = (A + A.T) / 2 + damping * eye
    z = (1 + p) / (2 * float(torch.linalg.matrix_norm(A, ord=2)))
    X = eye * z ** (1.0 / p)
    M = A * z
    for it in range(1, iters + 1):
        T = ((p + 1) * eye - M) / p
        X = X @ T
        M = torch.linalg.matrix_power(T, p) @ M
        if float((M - eye).abs().max()) < tol:
            return X, it
    return X, iters


# -- the cubic-regularized Newton step -------------------------------------------------------------------

def cubic_step(g: torch.Tensor, H: torch.Tensor, M: float, tol: float = 1e-13, max_iter: int = 200,
               eig: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """argmin_h <g, h> + h^T H h / 2 + M ||h||^3 / 6 (Nesterov and Polyak 2006) for symmetric H.

    The minimizer is h(r) = -(H + (M r / 2) I)^-1 g with r = ||h(r)|| and H + (M r / 2) I PSD; in H's
    eigenbasis ||h(r)|| = ||(lam + M r / 2)^-1 (Q^T g)|| decreases in r, so r is found by bisection on
    [max(0, -2 lam_min / M), upper]. Pass `eig = (lam, Q)` to reuse one eigendecomposition of H for
    several steps (the lazy-Hessian methods' saving). The hard case (g orthogonal to the bottom
    eigenvector of an indefinite H) is not treated."""
    if not M > 0:
        raise ValueError(f"M must be > 0, got {M}")
    lam, Q = eig if eig is not None else torch.linalg.eigh((H + H.T) / 2)
    gq = Q.T @ g
    gn = float(g.norm())
    if gn == 0:
        return torch.zeros_like(g)
    lo = max(0.0, -2.0 * float(lam.min()) / M)

    def norm_h(r: float) -> float:
        return float((gq / (lam + M * r / 2)).norm())

    # phi(r) = ||h(r)|| - r is decreasing; an upper end where phi < 0:
    hi = max(lo, 1e-300) * 2 + math.sqrt(2 * gn / M) + 1.0
    while norm_h(hi) > hi:
        hi *= 2
    for _ in range(max_iter):
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            break
        if norm_h(mid) > mid:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * max(1.0, hi):
            break
    r = hi
    return -(Q @ (gq / (lam + M * r / 2)))


# -- lazy recomputation ---------------------------------------------------------------------------------

class Lazy:
    """A value recomputed every `k` calls (k = 1: every call) and reused in between; `count` is the
    number of recomputations (a reused Hessian's cost is counted once per refresh)."""

    def __init__(self, k: int):
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        self.k, self.calls, self.count, self.value = k, 0, 0, None

    def get(self, compute: Callable[[], object]):
        if self.calls % self.k == 0:
            self.value = compute()
            self.count += 1
        self.calls += 1
        return self.value

    def state_dict(self) -> dict:
        return {"k": self.k, "calls": self.calls, "count": self.count, "value": self.value}

    def load_state_dict(self, sd: dict) -> None:
        self.k, self.calls, self.count, self.value = sd["k"], sd["calls"], sd["count"], sd["value"]
