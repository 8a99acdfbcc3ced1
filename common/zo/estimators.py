"""Gradient estimators from function values (and one from forward-mode derivatives).

Random-vector estimate (RGE), q queries, directions z_j from `ParamSpace` (E z z^T = I):
    two-sided:  ĝ = (1/q) Σ_j [f(θ + ε z_j) - f(θ - ε z_j)] / (2ε) · z_j
    one-sided:  ĝ = (1/q) Σ_j [f(θ + ε z_j) - f(θ)] / ε · z_j
For Gaussian z both are unbiased for the gradient of the Gaussian smoothing f_ε(θ) = E f(θ + ε u)
(Nesterov & Spokoiny 2017); for z on the sphere of radius sqrt(d), for the ball smoothing of radius
ε sqrt(d). The estimate is returned as (coefficient, seed) pairs, never as a dense tensor: ĝ is
regenerated from the seeds when it is applied (MeZO).

Coordinate-wise estimate (CGE, DeepZero): ĝ_i = [f(θ + μ e_i) - f(θ)] / μ for each selected i.
Forward gradient: ĝ = (∇f · v) v with v ~ N(0, I), ∇f · v from one `torch.func.jvp`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from optrepro.errors import ConfigError
from optrepro.zo.perturb import ParamSpace, add_, perturbed


def check_eps(eps: float, name: str = "perturbation scale eps") -> float:
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {eps!r}")
    return float(eps)


def scalar(v, what: str = "the loss closure") -> float:
    """A closure's value as a float; a clear error for anything but one number."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ConfigError(f"{what} must return a scalar loss, got a tensor of shape {tuple(v.shape)}")
        return float(v.detach())
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise ConfigError(f"{what} must return a scalar loss (a number or a one-element tensor), got {type(v).__name__}")


@dataclass
class Estimate:
    """ĝ = Σ_j coefs[j] · z(seeds[j]); `loss` is f at θ when it was evaluated, else the mean of f(θ ± ε z)."""

    coefs: list
    seeds: list
    loss: float
    evals: int

    def dense(self, space: ParamSpace) -> list:
        out = [torch.zeros_like(p) for p in space.params]
        for c, s in zip(self.coefs, self.seeds):
            for o, z in zip(out, space.dense(s)):
                o.add_(z, alpha=c)
        return out


def rge(closure, model, space: ParamSpace, seeds, eps: float, two_sided: bool = True, inplace: bool = False,
        f0: float | None = None) -> Estimate:
    """Random-vector gradient estimate with len(seeds) queries (see the module docstring).

    inplace=False evaluates f(θ ± ε z) with `perturbed` (θ untouched); inplace=True moves θ in place
    as MeZO does: +ε z, -2ε z, +ε z."""
    eps = check_eps(eps)
    q = len(seeds)
    if q < 1:
        raise ConfigError("a random gradient estimate needs at least one query")
    evals = 0
    if not two_sided and f0 is None:
        with torch.no_grad():
            f0 = scalar(closure())
        evals += 1

    def at(seed, s):
        if not inplace:
            with perturbed(model, space, seed, s):
                return scalar(closure())
        add_(space, seed, s)
        with torch.no_grad():
            return scalar(closure())

    coefs, vals = [], []
    for seed in seeds:
        fp = at(seed, eps)
        if two_sided:
            fm = at(seed, -2 * eps) if inplace else at(seed, -eps)
            if inplace:
                add_(space, seed, eps)
            coefs.append((fp - fm) / (2 * eps) / q)
            vals += [fp, fm]
            evals += 2
        else:
            if inplace:
                add_(space, seed, -eps)
            coefs.append((fp - f0) / eps / q)
            vals.append(fp)
            evals += 1
    loss = f0 if f0 is not None else sum(vals) / len(vals)
    return Estimate(coefs, list(seeds), loss, evals)


def selected_coords(space: ParamSpace) -> torch.Tensor:
    """Flat indices (into cat of the space's parameters) of the entries the masks select."""
    parts, off = [], 0
    for i, p in enumerate(space.params):
        m = space.mask(i)
        idx = torch.arange(p.numel()) if m is None else torch.nonzero(m.reshape(-1).cpu()).flatten()
        parts.append(idx + off)
        off += p.numel()
    return torch.cat(parts)


def cge(loss_of_flat, theta: torch.Tensor, coords: torch.Tensor, mu: float, f0: float | None = None,
        batch: int = 256) -> tuple[torch.Tensor, float, int]:
    """Coordinate-wise forward differences ĝ_i = [f(θ + μ e_i) - f(θ)] / μ at `coords` (zero elsewhere).

    loss_of_flat(thetas) takes a (k, d) batch of flat parameter vectors and returns k losses (the
    caller vectorizes it, e.g. with torch.func.vmap over functional_call). Returns (ĝ, f(θ), queries)."""
    mu = check_eps(mu, "coordinate step mu")
    if coords.numel() == 0:
        raise ConfigError("the mask selects no parameter: CGE has no coordinate to estimate")
    with torch.no_grad():
        if f0 is None:
            f0 = float(loss_of_flat(theta[None])[0])
        g = torch.zeros_like(theta)
        for s in range(0, coords.numel(), batch):
            idx = coords[s:s + batch]
            thetas = theta.repeat(idx.numel(), 1)
            thetas[torch.arange(idx.numel()), idx] += mu
            g[idx] = (loss_of_flat(thetas) - f0) / mu
    return g, f0, int(coords.numel()) + 1


def forward_grad(loss_of_params, space: ParamSpace, seed: int) -> Estimate:
    """ĝ = (∇f · v) v with v = z(seed), the directional derivative from one jvp (no backward pass).

    loss_of_params(params_tuple) -> scalar, evaluated at the space's current parameters."""
    primals = tuple(p.detach() for p in space.params)
    tangents = tuple(space.dense(seed))
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):  # fused attention kernels have no forward-mode derivative on the CPU
        val, dd = torch.func.jvp(loss_of_params, (primals,), (tangents,))
    return Estimate([scalar(dd, "the directional derivative")], [seed], scalar(val), 1)
