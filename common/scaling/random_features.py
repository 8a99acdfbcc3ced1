"""The power-law random-feature model of neural scaling (Bordelon, Atanasov and Pehlevan, 2024),
solved exactly by one SVD.

Features psi in R^M with covariance Lambda = diag(lambda_k), lambda_k = k^-b; the target is
y = w* . psi with (w*_k)^2 lambda_k = k^-a (the power of the target in mode k decays as k^-a,
a > 1). The student has N random features: f = w . A psi / sqrt(N), A an N x M standard Gaussian
matrix, w trained from 0 by gradient flow on the population loss L = E (f - y)^2 (time in units of
the learning rate; dw/dt = -1/2 dL/dw).

With v = A^T w / sqrt(N) and u = Lambda^1/2 (v - w*): du/dt = -S u with S = B^T B,
B = A Lambda^1/2 / sqrt(N), and L = |u|^2. From the SVD B = U diag(s) V^T:

    L(t, N) = |u0|^2 - |V^T u0|^2 + sum_i exp(-2 s_i^2 t) (V^T u0)_i^2,    u0 = -Lambda^1/2 w*,

so L(inf, N) = |u0|^2 - |V^T u0|^2 is the model-size bottleneck. Discrete gradient descent with
step eta replaces exp(-2 s^2 t) by (1 - eta s^2)^(2 k) (`loss_gd`; `simulate_gd` runs the steps on
w itself, the literal equations the closed forms are tested against).

Asymptotic theory (the paper): modes with lambda_k t > 1 are learned by time t, N random features
resolve about N modes, hence L(t, inf) ~ t^-(a-1)/b and L(inf, N) ~ N^-(a-1): the time and model-size
exponents differ. With compute C = N t, balancing the two terms gives N* ~ C^(1/(1+b)),
t* ~ C^(b/(1+b)) (steps grow faster than parameters when b > 1) and L* ~ C^-(a-1)/(1+b).

Finite data (`finite_data_curves`): P samples with features X (P x M, rows ~ N(0, Lambda)), gradient
flow on the empirical loss; the train loss falls below the test loss as the data are reused."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Theory:
    a: float
    b: float

    @property
    def time_exponent(self) -> float:
        return (self.a - 1) / self.b

    @property
    def width_exponent(self) -> float:
        return self.a - 1

    @property
    def n_star_exponent(self) -> float:
        return 1 / (1 + self.b)

    @property
    def t_star_exponent(self) -> float:
        return self.b / (1 + self.b)

    @property
    def loss_exponent(self) -> float:
        return (self.a - 1) / (1 + self.b)


def problem(M: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """(lambda, w*) for M modes."""
    if not (a > 1 and b > 0 and M >= 2):
        raise ValueError(f"need a > 1, b > 0, M >= 2; got a={a}, b={b}, M={M}")
    k = np.arange(1, M + 1, dtype=np.float64)
    return k ** -b, k ** (-(a - b) / 2)


def projection(N: int, M: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((N, M))


class Solved:
    """One student (A fixed): the SVD of B and the initial error in its right singular basis."""

    def __init__(self, A: np.ndarray, lam: np.ndarray, w_star: np.ndarray):
        N = A.shape[0]
        B = A * np.sqrt(lam)[None, :] / np.sqrt(N)
        _, s, Vt = np.linalg.svd(B, full_matrices=False)
        u0 = -np.sqrt(lam) * w_star
        self.s2 = s ** 2
        self.c = (Vt @ u0) ** 2
        self.total = float(u0 @ u0)
        self.floor = max(self.total - float(self.c.sum()), 0.0)

    def loss(self, t) -> np.ndarray:
        """L(t) under gradient flow, for an array of times."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        return self.floor + np.exp(-2 * np.outer(t, self.s2)) @ self.c

    def loss_gd(self, steps, eta: float) -> np.ndarray:
        """L after `steps` steps of gradient descent with step eta (eta s^2 < 1)."""
        k = np.atleast_1d(np.asarray(steps, dtype=np.float64))
        return self.floor + (1 - eta * self.s2)[None, :] ** (2 * k[:, None]) @ self.c


def simulate_gd(A: np.ndarray, lam: np.ndarray, w_star: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """Gradient descent on w itself: w <- w - eta/2 dL/dw; the loss after every step (0..steps)."""
    N = A.shape[0]
    w = np.zeros(N)
    out = []
    for _ in range(steps + 1):
        v = A.T @ w / np.sqrt(N)
        r = v - w_star
        out.append(float(np.sum(lam * r * r)))
        w = w - eta * (A @ (lam * r)) / np.sqrt(N)
    return np.array(out)


def finite_data_curves(A: np.ndarray, lam: np.ndarray, w_star: np.ndarray, P: int, times,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train loss, test loss) at `times` for gradient flow on P samples (the empirical loss
    (1/P) |X A^T w / sqrt(N) - y|^2; the test loss is the population loss of the same w)."""
    N = A.shape[0]
    X = rng.standard_normal((P, A.shape[1])) * np.sqrt(lam)[None, :]
    y = X @ w_star
    F = X @ A.T / np.sqrt(N)  # P x N: the student's features of the samples
    G = F.T @ F / P  # flow: dw/dt = -(G w - F^T y / P)
    h = F.T @ y / P
    ev, Q = np.linalg.eigh(G)
    ev = np.clip(ev, 0, None)
    hq = Q.T @ h
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    train, test = [], []
    for t in times:
        # w(t) = Q diag((1 - e^{-ev t}) / ev) Q^T h  (t for ev = 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(ev > 1e-14, -np.expm1(-ev * t) / ev, t)
        w = Q @ (f * hq)
        train.append(float(np.mean((F @ w - y) ** 2)))
        r = A.T @ w / np.sqrt(N) - w_star
        test.append(float(np.sum(lam * r * r)))
    return np.array(train), np.array(test)


def loglog_slope(x, y) -> float:
    """The least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
