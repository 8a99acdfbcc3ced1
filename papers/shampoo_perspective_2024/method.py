r"""A new perspective on Shampoo's preconditioner (Morwani, Shapira, Vyas, Malach, Kakade and Janson, 2024).

For a weight matrix W (m x n) with per-example gradients G_i, the full-matrix Adagrad statistic is
A = Σ_i vec(G_i) vec(G_i)' (mn x mn; vec row-major, so index (a, c) with a the row and c the column),
and the Gauss-Newton matrix of the layer has the same shape. Shampoo keeps L = Σ G_i G_i' (m x m) and
R = Σ G_i' G_i (n x n) and preconditions with L^(-1/4) ⊗ R^(-1/4), i.e. it approximates A^(1/2) by
L^(1/4) ⊗ R^(1/4), which is to say A by (L ⊗ R)^(1/2). The paper's observation: the optimal Kronecker
approximation min_{X,Y} ||M - X ⊗ Y||_F is the top singular pair of the rearranged matrix
(Van Loan and Pitsianis 1993), found by power iteration, and one step of it from the identity gives
X ∝ L, Y ∝ R, i.e. the *square* of Shampoo's approximation, L ⊗ R. So:

    optimal:   c* X* ⊗ Y*     (top singular pair of rearrange(M))
    one step:  c (L ⊗ R)      with L, R the partial traces of M (for M = A: Σ G G', Σ G' G)
    shampoo:   c (L ⊗ R)^(1/2) = c L^(1/2) ⊗ R^(1/2)

each with the best scale c = <M, K> / <K, K>, compared by relative Frobenius error ||M - cK|| / ||M||.
The functions here are the literal definitions; tests/reference/test_shampoo_perspective.py checks
them against exact Kronecker products, the partial traces of Σ vec(G) vec(G)', and power iteration."""
from __future__ import annotations

import torch

from optrepro.curvature import sym_power


def rearrange(M: torch.Tensor, m: int, n: int) -> torch.Tensor:
    """R(M) (m² x n²) with R(X ⊗ Y) = vec(X) vec(Y)' (row-major vecs), for M of size mn x mn."""
    return M.reshape(m, n, m, n).permute(0, 2, 1, 3).reshape(m * m, n * n)


def partial_traces(M: torch.Tensor, m: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_c M[(a,c),(b,c)], Σ_a M[(a,c),(a,d)]): one power-iteration step of rearrange(M) from identities."""
    T = M.reshape(m, n, m, n)
    return torch.einsum("acbc->ab", T), torch.einsum("acad->cd", T)


def optimal_kron(M: torch.Tensor, m: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, Y) minimizing ||M - X ⊗ Y||_F: the top singular pair of rearrange(M), scaled into X."""
    U, S, Vh = torch.linalg.svd(rearrange(M, m, n), full_matrices=False)
    X, Y = (S[0] * U[:, 0]).reshape(m, m), Vh[0].reshape(n, n)
    if torch.trace(Y) < 0:  # the pair's sign is arbitrary: take the PSD orientation
        X, Y = -X, -Y
    return X, Y


def power_iteration_kron(M: torch.Tensor, m: int, n: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` alternating power-iteration steps on rearrange(M) starting from Y = I (steps = 1: X ∝ the
    first partial trace, then Y from that X)."""
    Rm = rearrange(M, m, n)
    y = torch.eye(n, dtype=M.dtype).reshape(-1)
    for _ in range(steps):
        x = Rm @ y
        y = Rm.T @ x / (x @ x)
    return x.reshape(m, m), y.reshape(n, n)


def scaled_error(M: torch.Tensor, K: torch.Tensor) -> float:
    """min_c ||M - c K||_F / ||M||_F."""
    c = (M * K).sum() / (K * K).sum()
    return float(torch.linalg.norm(M - c * K) / torch.linalg.norm(M))


def approximation(M: torch.Tensor, m: int, n: int, kind: str) -> torch.Tensor:
    """The Kronecker approximation of `kind` (optimal | one_step | shampoo), before scaling."""
    if kind == "optimal":
        X, Y = optimal_kron(M, m, n)
        return torch.kron(X, Y)
    L, R = partial_traces(M, m, n)
    if kind == "one_step":
        return torch.kron(L, R)
    if kind == "shampoo":
        return torch.kron(sym_power(L, 0.5), sym_power(R, 0.5))
    raise ValueError(f"kind must be optimal, one_step or shampoo, got {kind!r}")


KINDS = ("optimal", "one_step", "shampoo")
