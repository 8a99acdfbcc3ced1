r"""Paquette, Paquette, Xiao, Pennington 2024: the power-law random features (PLRF) model trained
by one-pass SGD, and its compute-optimal model size d*(f).

The model. Data x ~ N(0, D) in R^v with D = diag(j^{-2α}), target <x, b> with b_j = j^{-β},
random features W in R^{v x d} with entries N(0, 1/d), prediction <W^T x, θ>. With
A = D^{1/2} W and c = D^{1/2} b the population risk is

    P(θ) = 1/2 E[(<W^T x, θ> - <x, b>)^2] = 1/2 ||A θ - c||^2.

One-pass SGD: every step draws B fresh samples, θ <- θ - (γ/B) Σ_b W^T x_b (<W^T x_b, θ> - <x_b, b>),
θ_0 = 0. Compute is f = r B d (r steps, d multiply-adds per sample); d*(f) minimises the loss over
d at fixed f.

Exact expected risk (our reference). Rotate to the eigenbasis H = A^T A = U Λ U^T and write
e = U^T(θ - θ*), θ* = argmin P. Then the features are independent N(0, λ_i), the residual noise
ε = y - <x, θ*> is independent of x with variance σ^2 = ||c - A θ*||^2, and for Gaussian data
(Isserlis: E[x x^T S x x^T] = 2 Λ S Λ + tr(Λ S) Λ) the diagonal s_i = E[e_i^2] obeys a closed,
linear recursion:

    s_i' = s_i (1 - γ λ_i)^2 + (γ^2/B) (λ_i^2 s_i + λ_i (Σ_j λ_j s_j + σ^2)),
    E[P(θ_r)] = 1/2 (Σ_i λ_i s_i(r) + σ^2).

So s' = (I - N) s + q with N = diag(2γλ - γ^2 λ^2 (1 + 1/B)) - (γ^2/B) λ λ^T symmetric, and
s(r) = s_∞ + Q (1 - ν)^r Q^T (s_0 - s_∞) from one eigendecomposition N = Q diag(ν) Q^T: the loss
at any step count costs O(d). This is the discrete form of the paper's Volterra equation, exact at
every d (no large-d limit), conditional on the drawn W.

Phases (2α > 1, above the high-dimensional line), from the paper's loss terms
F_pp(r) ~ r^{-(2α+2β-1)/(2α)} (signal), F_0 ~ d^{-2α+max(0,1-2β)} (capacity),
F_ac ~ d^{-1} r^{-1+1/(2α)} (feature embedding, 2β > 1 only), K_pp ~ r^{-2+1/(2α)} (SGD noise),
each balanced at r = f/d; see `predicted_exponents`. The paper's own table was not available to
us: these exponents are our derivation from those terms (reported.csv marks them unverified).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Spectrum:
    """A drawn PLRF problem seen from the eigenbasis of H = A^T A."""
    lam: np.ndarray
    """Eigenvalues of H, ascending."""
    u: np.ndarray
    """U^T θ*: the optimum in eigen-coordinates (θ_0 = 0, so e_0 = -u)."""
    sigma2: float
    """||c - A θ*||^2 = 2 x (the lowest risk d features can reach)."""
    risk0: float
    """P(0) = 1/2 ||c||^2."""


def plrf(alpha: float, beta: float, v: int, d: int, seed: int = 0, d_nest: int | None = None):
    """(A, c): A = D^{1/2} W (v x d), c = D^{1/2} b (v,), float64. With `d_nest` >= d, W is the
    first d columns of one v x d_nest Gaussian matrix (same seed), rescaled to variance 1/d:
    every size is still an exact PLRF draw, and sizes share their random numbers, so loss
    differences between sizes are not swamped by draw-to-draw noise."""
    if not (v > d > 0):
        raise ValueError(f"need v > d > 0, got v={v}, d={d}")
    if d_nest is not None and d_nest < d:
        raise ValueError(f"d_nest ({d_nest}) must be >= d ({d})")
    g = np.random.default_rng(seed)
    W = g.standard_normal((v, d_nest or d))[:, :d] / math.sqrt(d)
    j = np.arange(1, v + 1, dtype=float)
    return j[:, None] ** (-alpha) * W, j ** (-alpha - beta)


def risk(A, c, theta) -> float:
    """Population risk 1/2 ||A θ - c||^2."""
    return 0.5 * float(np.sum((A @ theta - c) ** 2))


def spectrum(A, c) -> Spectrum:
    lam, U = np.linalg.eigh(A.T @ A)
    Atc = A.T @ c
    theta = U @ ((U.T @ Atc) / lam)
    sigma2 = float(np.sum((c - A @ theta) ** 2))
    return Spectrum(lam=lam, u=U.T @ theta, sigma2=sigma2, risk0=0.5 * float(c @ c))


def _n_matrix(sp: Spectrum, lr: float, batch: int) -> np.ndarray:
    lam = sp.lam
    return np.diag(2 * lr * lam - lr ** 2 * lam ** 2 * (1 + 1 / batch)) - (lr ** 2 / batch) * np.outer(lam, lam)


def expected_risk(sp: Spectrum, lr: float, batch: int, steps) -> np.ndarray:
    """E[P(θ_r)] of one-pass SGD at each (integer) step count r in `steps`, exactly (module doc)."""
    steps = np.asarray(steps, dtype=float)
    if np.any(steps < 0) or np.any(steps != np.round(steps)):
        raise ValueError("steps must be non-negative integers")
    nu, Q = np.linalg.eigh(_n_matrix(sp, lr, batch))
    if nu.min() <= 0 or nu.max() >= 2:
        raise ValueError(f"lr {lr:g} with batch {batch} is not mean-square stable on this problem "
                         f"(eigenvalues of I - M in [{nu.min():.3g}, {nu.max():.3g}], need (0, 2)): lower lr")
    q = (lr ** 2 / batch) * sp.sigma2 * sp.lam
    s_inf = Q @ ((Q.T @ q) / nu)
    w, z = Q.T @ sp.lam, Q.T @ (sp.u ** 2 - s_inf)
    # (1 - ν)^r, accurately for tiny ν (log1p); 1 - ν < 0 when ν > 1, negative at odd r
    mag = np.where(nu < 1, np.log1p(-np.where(nu < 1, nu, 0.0)), np.log(np.abs(1 - nu)))
    odd_negative = (nu > 1)[None, :] & (steps[:, None] % 2 == 1)
    pw = np.exp(np.outer(steps, mag)) * np.where(odd_negative, -1.0, 1.0)
    return 0.5 * (float(sp.lam @ s_inf) + pw @ (w * z) + sp.sigma2)


def expected_risk_recursion(sp: Spectrum, lr: float, batch: int, steps: int) -> np.ndarray:
    """The same by iterating the recursion step by step: E[P] at r = 0..steps (for tests)."""
    lam, s = sp.lam, sp.u.copy() ** 2
    out = [0.5 * (lam @ s + sp.sigma2)]
    for _ in range(steps):
        s = s * (1 - lr * lam) ** 2 + (lr ** 2 / batch) * (lam ** 2 * s + lam * (lam @ s + sp.sigma2))
        out.append(0.5 * (lam @ s + sp.sigma2))
    return np.array(out)


def sgd_literal(A, c, lr: float, batch: int, steps: int, eval_at, seed: int = 0) -> np.ndarray:
    """One-pass SGD exactly as written (fresh z ~ N(0, I_v) per sample, x = D^{1/2} z): the
    population risk at each step in `eval_at`. O(v d) per sample: the reference, not the workhorse."""
    g = torch.Generator().manual_seed(seed)
    At, ct = torch.as_tensor(A), torch.as_tensor(c)
    theta = torch.zeros(A.shape[1], dtype=At.dtype)
    want, out = set(int(r) for r in eval_at), {}
    if 0 in want:
        out[0] = risk(A, c, theta.numpy())
    for r in range(1, steps + 1):
        z = torch.randn(batch, A.shape[0], generator=g, dtype=At.dtype)
        feats, y = z @ At, z @ ct
        theta -= (lr / batch) * feats.T @ (feats @ theta - y)
        if r in want:
            out[r] = risk(A, c, theta.numpy())
    return np.array([out[int(r)] for r in eval_at])


def sgd_eigen(spectra: list[Spectrum], lr: float, batch: int, eval_at, seeds: int = 4, seed: int = 0,
              chunk: int = 512) -> np.ndarray:
    """One-pass SGD on several problems and seeds at once, in each problem's eigenbasis (same law
    as sgd_literal: a rotation of θ, O(d) per sample). Problems of different d are zero-padded
    (λ = 0 coordinates never move and never count). Returns the population risk, shape
    (problems, seeds, len(eval_at))."""
    dm = max(len(s.lam) for s in spectra)
    R = len(spectra)
    lam = torch.zeros(R, 1, 1, dm, dtype=torch.float64)
    e = torch.zeros(R, seeds, dm, dtype=torch.float64)
    sig = torch.tensor([math.sqrt(s.sigma2) for s in spectra], dtype=torch.float64).view(R, 1, 1)
    for i, s in enumerate(spectra):
        lam[i, 0, 0, :len(s.lam)] = torch.as_tensor(s.lam)
        e[i, :, :len(s.lam)] = -torch.as_tensor(s.u)
    sq, lam3 = lam.sqrt(), lam[:, :, 0, :]
    sig2 = sig.view(R, 1) ** 2
    g = torch.Generator().manual_seed(seed)
    eval_at = [int(r) for r in eval_at]
    want = {r: k for k, r in enumerate(eval_at)}
    out = np.zeros((R, seeds, len(eval_at)))
    measure = lambda: (0.5 * ((lam3 * e * e).sum(-1) + sig2)).numpy()
    if 0 in want:
        out[:, :, want[0]] = measure()
    r, last = 0, max(eval_at)
    while r < last:
        n = min(chunk, last - r)
        xs = torch.randn(n, R, seeds, batch, dm, generator=g, dtype=torch.float64) * sq
        eps = torch.randn(n, R, seeds, batch, generator=g, dtype=torch.float64) * sig
        for t in range(n):
            x = xs[t]
            resid = torch.einsum("rsbd,rsd->rsb", x, e) - eps[t]
            e -= (lr / batch) * torch.einsum("rsb,rsbd->rsd", resid, x)
            r += 1
            if r in want:
                out[:, :, want[r]] = measure()
    return out


def phase(alpha: float, beta: float) -> str:
    """Ia | II | III above the high-dimensional line (2α > 1); the phases below it (Ib, Ic, IVa,
    IVb) need the d-dependent learning rate the paper uses there and are not covered."""
    if 2 * alpha <= 1 or alpha + beta <= 0.5:
        raise ValueError(f"(α, β) = ({alpha}, {beta}) is below the high-dimensional line (2α <= 1): "
                         "phases Ib, Ic, IV are not implemented")
    if 2 * beta < 1:
        return "Ia"
    return "II" if beta < alpha else "III"


def predicted_exponents(alpha: float, beta: float) -> tuple[float, float]:
    """(η, κ) with d*(f) ~ f^η and P(f/d*, d*) ~ f^{-κ}, from balancing the dominant loss terms:
    Ia: F_pp vs F_0; II: F_pp vs F_ac; III: K_pp vs F_ac (so r* = d*: η = 1/2 for every α, β).
    They agree on the phase boundaries (β = 1/2 and β = α), a check on the algebra."""
    p = phase(alpha, beta)
    if p == "Ia":
        return 1 / (2 * alpha + 1), (2 * alpha + 2 * beta - 1) / (2 * alpha + 1)
    if p == "II":
        return beta / (alpha + beta), (2 * alpha + 2 * beta - 1) / (2 * (alpha + beta))
    return 0.5, 1 - 1 / (4 * alpha)
