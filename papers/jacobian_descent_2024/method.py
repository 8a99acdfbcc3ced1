r"""Jacobian descent (Quinton & Rey, 2024, arXiv:2406.16232): a step on m objectives at once,
x <- x - lr A(J), where J (m x n) holds one gradient per objective and the aggregator A reduces it
to one update. Every aggregator here is a weighting of the rows, A(J) = J^T w, with w computed
from the Gramian G = J J^T only.

UPGrad (the paper's aggregator). Each row g_i is projected onto the dual cone of the rows,
{x : J x >= 0} (the directions that conflict with no objective), and the projections are averaged:

    A(J) = (1/m) sum_i pi_J(g_i),      pi_J(J^T u) = J^T v*(u),   v*(u) = argmin_{v >= u} v^T G v

(the projection's dual, Proposition 1 of the paper). We solve each dual as a non-negative least
squares problem: with v = u + z, z >= 0 and G = R^T R, v^T G v = ||R z + R u||^2, solved exactly by
the Lawson-Hanson active-set method (scipy.optimize.nnls). As torchjd does, G is first divided by
its trace (`norm_eps`: below it G is taken as 0) and `reg_eps` I is added to make it definite; with
reg_eps = 0 the projection is exact.

Mean: w = 1/m (gradient descent on the average loss). MGDA (Désidéri 2012) as Sener & Koltun's
Frank-Wolfe solver for the min-norm point of the rows' convex hull, w in the simplex minimizing
w^T G w (start uniform; stop when the step gamma < epsilon or after max_iters). PCGrad (Yu et al.
2020): for each i, g_i is projected away from each g_j it conflicts with, visiting the j in a
random order, and the results are summed.

An aggregator maps J (m x n) to a vector of n; `weights(G)` gives w."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls


def gramian(J: torch.Tensor) -> torch.Tensor:
    return J @ J.T


class Aggregator:
    name = "aggregator"

    def weights(self, G: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, J: torch.Tensor) -> torch.Tensor:
        if J.dim() != 2 or J.shape[0] < 1:
            raise ValueError(f"an aggregator takes a Jacobian of shape (m, n) with m >= 1, got {tuple(J.shape)}")
        return J.T @ self.weights(gramian(J)).to(J.dtype)


class Mean(Aggregator):
    name = "mean"

    def weights(self, G):
        m = G.shape[0]
        return torch.full((m,), 1.0 / m, dtype=G.dtype, device=G.device)


def gram_root(G: np.ndarray) -> np.ndarray:
    """R with R^T R = G for a positive semi-definite G (float64), from its eigendecomposition."""
    lam, Q = np.linalg.eigh(G)
    return np.sqrt(np.clip(lam, 0.0, None))[:, None] * Q.T


def project_dual(u: np.ndarray, R: np.ndarray) -> np.ndarray:
    """argmin_{v >= u} v^T G v, G = R^T R (R from gram_root: one factorization for all m duals)."""
    z, _ = nnls(R, -R @ u, maxiter=50 * len(u))
    return u + z


class UPGrad(Aggregator):
    name = "upgrad"

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4):
        if not (norm_eps >= 0 and reg_eps >= 0):
            raise ValueError(f"norm_eps and reg_eps must be >= 0, got {norm_eps} and {reg_eps}")
        self.norm_eps, self.reg_eps = norm_eps, reg_eps

    def weights(self, G):
        m = G.shape[0]
        G64 = G.detach().double().cpu()
        tr = G64.diagonal().sum()
        G64 = torch.zeros_like(G64) if tr < self.norm_eps else G64 / tr
        G64 = G64 + self.reg_eps * torch.eye(m, dtype=torch.float64)
        R = gram_root(G64.numpy())
        w = np.zeros(m)
        for i in range(m):  # row i's weight vector is e_i / m
            u = np.zeros(m)
            u[i] = 1.0 / m
            w += project_dual(u, R)
        return torch.as_tensor(w, dtype=G.dtype, device=G.device)


class MGDA(Aggregator):
    name = "mgda"

    def __init__(self, epsilon: float = 1e-3, max_iters: int = 100):
        if not (epsilon > 0 and max_iters >= 1):
            raise ValueError(f"epsilon must be > 0 and max_iters >= 1, got {epsilon} and {max_iters}")
        self.epsilon, self.max_iters = epsilon, max_iters

    def weights(self, G):
        m = G.shape[0]
        w = torch.full((m,), 1.0 / m, dtype=G.dtype, device=G.device)
        for _ in range(self.max_iters):
            t = int(torch.argmin(G @ w))
            a, b, c = w @ G[:, t], w @ G @ w, G[t, t]  # <w, e_t>_G, |w|_G^2, |e_t|_G^2
            gamma = 1.0 if c <= a else 0.0 if b <= a else float((b - a) / (b + c - 2 * a))
            w = (1 - gamma) * w
            w[t] += gamma
            if gamma < self.epsilon:
                break
        return w


class PCGrad(Aggregator):
    """The order of the j is drawn with torch.randperm from `generator` (the global generator when None)."""
    name = "pcgrad"

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def weights(self, G):
        m = G.shape[0]
        Gc = G.detach().cpu().double().numpy()
        total = np.zeros(m)
        for i in range(m):
            order = torch.randperm(m, generator=self.generator).tolist()
            w = np.zeros(m)
            w[i] = 1.0
            for j in order:
                if j == i:
                    continue
                dot = Gc[j] @ w  # <current g_i, g_j>
                if dot < 0:
                    w[j] -= dot / Gc[j, j]
            total += w
        return torch.as_tensor(total, dtype=G.dtype, device=G.device)


AGGREGATORS = {"mean": Mean, "upgrad": UPGrad, "mgda": MGDA, "pcgrad": PCGrad}


def make_aggregator(name: str, **kwargs) -> Aggregator:
    if name not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {name!r}: one of {', '.join(AGGREGATORS)}")
    return AGGREGATORS[name](**kwargs)
