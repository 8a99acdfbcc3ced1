"""SGD on a diagonal linear network, the paper's simplest model (Andriushchenko, Varre, Pillaud-Vivien
and Flammarion, "SGD with Large Step Sizes Learns Sparse Features", ICML 2023, arXiv:2210.05337).

Model and loss, for data X in R^{n x d}, y in R^n:

    h_{u,v}(x) = <u * v, x>,   beta = u * v,   L(u, v) = (1/2n) sum_i (<beta, x_i> - y_i)^2
    per example: l_i = (e_i)^2 / 2,  e_i = <u * v, x_i> - y_i,
                 grad_u l_i = e_i x_i * v,   grad_v l_i = e_i x_i * u

SGD with batch size 1 (the paper's): draw i_t uniformly, (u, v) <- (u, v) - gamma_t grad l_{i_t}.
Initialisation u_0 = alpha 1, v_0 = 0 (the authors' `alpha=0.1const` setting).

The curvature of one example, the top eigenvalue of the Hessian of l_i at a point where e_i = 0:

    lambda_i(u, v) = ||x_i * u||^2 + ||x_i * v||^2        (the Hessian there is J^T J, J = [x_i*v, x_i*u])

A step gamma on l_i alone is stable (in its linearisation) for gamma lambda_i < 2 and overshoots the
example's valley (the residual changes sign: the "jump to the other side" of the paper) for
gamma lambda_i > 1. `normalized=True` sets gamma_t = c_t / lambda_{i_t}(u_t, v_t): the same multiple c
of the example's own curvature on every data draw and at every point (our deviation, see paper.yaml).

Closed form used as the reference (Woodworth et al. 2020, "Kernel and rich regimes"): gradient flow
on beta = w+^2 - w-^2 from w+ = w- = a 1 converges to the interpolator that minimises
Q_a(beta) = a^2 sum_i q(beta_i / a^2), q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z / 2). Writing
u = w+ + w-, v = w+ - w- gives u * v = w+^2 - w-^2, u_0 = 2a, v_0 = 0, and the same flow at twice
the speed, so the u * v flow from u_0 = alpha 1, v_0 = 0 converges to argmin Q_{alpha/2}. Its KKT
conditions beta = 2 a^2 sinh(X^T nu), X beta = y are solved by Newton's method on the convex dual
min_nu 2 a^2 sum_j cosh((X^T nu)_j) - <nu, y> (`gradient_flow_limit`)."""
from __future__ import annotations

import math

import numpy as np


def sparse_regression(n: int, d: int, r: int, n_test: int, seed: int):
    """(X, y, X_test, y_test, beta_star): x ~ N(0, I_d), beta_star >= 0 on the first r coordinates with
    unit norm, noiseless labels y = X beta_star (the authors' data model, our generator)."""
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, d))
    X_test = g.standard_normal((n_test, d))
    beta = np.zeros(d)
    beta[:r] = np.abs(g.standard_normal(r))
    beta /= np.linalg.norm(beta)
    return X, X @ beta, X_test, X_test @ beta, beta


def loss(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float:
    """(1/2n) ||X beta - y||^2."""
    r = X @ beta - y
    return float(r @ r) / (2 * len(y))


def example_grad(u: np.ndarray, v: np.ndarray, x: np.ndarray, y: float):
    """(grad_u l, grad_v l, e) for one example."""
    e = float(x @ (u * v)) - y
    return e * x * v, e * x * u, e


def example_curvature(u: np.ndarray, v: np.ndarray, x: np.ndarray) -> float:
    """lambda(u, v) = ||x * u||^2 + ||x * v||^2, the top Hessian eigenvalue of l at e = 0."""
    xu, xv = x * u, x * v
    return float(xu @ xu + xv @ xv)


def full_grad(u: np.ndarray, v: np.ndarray, X: np.ndarray, y: np.ndarray):
    """Gradient of L(u, v) = (1/2n) ||X (u * v) - y||^2."""
    g = X.T @ (X @ (u * v) - y) / len(y)
    return g * v, g * u


def large_phase_end(steps: int, large_frac: float) -> int:
    """The first step after the large-step phase."""
    return round(large_frac * steps)


def step_schedule(base: float, steps: int, large_frac: float, decay: float):
    """base for the first large_phase_end(steps, large_frac) iterations, base / decay after."""
    switch = large_phase_end(steps, large_frac)
    return lambda t: base if t < switch else base / decay


def sgd(X, y, steps: int, rate, *, normalized: bool, alpha: float, seed: int, every: int = 0,
        blowup: float = 1e8):
    """Batch-1 SGD on the diagonal linear network. `rate(t)` gives gamma_t (normalized=False) or c_t
    (normalized=True: gamma_t = c_t / lambda_{i_t}). Yields (t, u, v) every `every` steps (t = 0 first)
    and once at the end; stops early, yielding (t, None, None), when |e| exceeds `blowup` or turns
    non-finite (divergence). The example order is drawn from `seed`."""
    n, d = X.shape
    u, v = alpha * np.ones(d), np.zeros(d)
    order = np.random.default_rng(seed).integers(n, size=steps)
    for t in range(steps):
        if every and t % every == 0:
            yield t, u, v
        x = X[order[t]]
        gu, gv, e = example_grad(u, v, x, y[order[t]])
        if not abs(e) < blowup:
            yield t, None, None
            return
        gamma = rate(t) / example_curvature(u, v, x) if normalized else rate(t)
        u, v = u - gamma * gu, v - gamma * gv
    yield steps, u, v


def gd(X, y, gamma: float, steps: int, alpha: float):
    """Full-batch GD from u = alpha 1, v = 0; returns (u, v)."""
    u, v = alpha * np.ones(X.shape[1]), np.zeros(X.shape[1])
    for _ in range(steps):
        gu, gv = full_grad(u, v, X, y)
        u, v = u - gamma * gu, v - gamma * gv
    return u, v


def gradient_flow_limit(X: np.ndarray, y: np.ndarray, alpha: float, tol: float = 1e-10,
                        max_iter: int = 500) -> np.ndarray:
    """argmin Q_{alpha/2}(beta) subject to X beta = y (the u * v gradient flow's limit from
    u_0 = alpha 1, v_0 = 0), by damped Newton on the dual."""
    k = 2 * (alpha / 2) ** 2
    nu = np.zeros(len(y))

    def dual(nu):
        return k * float(np.cosh(X.T @ nu).sum()) - float(nu @ y)

    for _ in range(max_iter):
        z = X.T @ nu
        g = X @ (k * np.sinh(z)) - y
        if np.linalg.norm(g) < tol * max(1.0, np.linalg.norm(y)):
            break
        H = (X * (k * np.cosh(z))) @ X.T
        step = np.linalg.solve(H, g)
        s, f0 = 1.0, dual(nu)
        while dual(nu - s * step) > f0 - 0.25 * s * float(g @ step) and s > 1e-12:
            s /= 2
        nu = nu - s * step
    else:
        raise RuntimeError("gradient_flow_limit: Newton did not converge")
    return k * np.sinh(X.T @ nu)


def hyperbolic_entropy(beta: np.ndarray, alpha: float) -> float:
    """Q_{alpha/2}(beta), the potential the gradient flow minimises."""
    a2 = (alpha / 2) ** 2
    z = beta / a2
    return float(a2 * np.sum(2 - np.sqrt(4 + z * z) + z * np.arcsinh(z / 2)))


def count_above(beta: np.ndarray, threshold: float) -> int:
    return int((np.abs(beta) > threshold).sum())


def finite_log10(x: float) -> float:
    return math.log10(max(x, 1e-300))
