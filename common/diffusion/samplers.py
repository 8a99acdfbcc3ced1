"""Samplers for any Process, parameterization and guidance rule.

`sample` integrates from t_0 (x = σ(t_0) z) down to t = 0 on a grid from `Process.grid`:

- `ddim`: deterministic DDIM (Song et al. 2021), x_next = α_next x̂0 + σ_next ε̂. On the flow path
  this is exactly the Euler step in t.
- `ddpm`: ancestral sampling (DDIM with η = 1: the DDPM posterior q(x_next | x_t, x̂0)).
- `euler`, `midpoint`, `heun`: the probability-flow ODE dx/dt = α' x̂0 + σ' ε̂ in the process's own
  time (flow matching's samplers).
- `edm`: Karras et al. 2022's Heun method on dx̂/dr = ε̂ with x̂ = x / α, r = σ / α (Algorithm 1,
  deterministic).

A step that ends at t = 0 returns the denoised estimate x̂0 (every method's limit; the second-order
methods take their Euler step there, as EDM does). Every network evaluation of every sample is
counted: `nfe` is the mean per sample, cond and uncond branches counted separately.
"""
from __future__ import annotations

import torch

from optrepro.diffusion.guidance import Rule
from optrepro.diffusion.process import Process
from optrepro.errors import ConfigError

SAMPLERS = ("ddim", "ddpm", "euler", "midpoint", "heun", "edm")


class Guided:
    """model + rule -> (x̂0, ε̂) at (x, t), with the branch evaluations counted."""

    def __init__(self, model, process: Process, param: str, rule: Rule, labels: torch.Tensor):
        if rule.needs_uncond and not getattr(model, "has_uncond", False):
            raise ConfigError(f"guidance rule {type(rule).__name__} at scale {rule.scale:g} needs the unconditional "
                              "prediction, but the model was trained without label dropout (p_uncond = 0)")
        if rule.needs_cond and not getattr(model, "has_cond", True):
            raise ConfigError(f"guidance rule {type(rule).__name__} at scale {rule.scale:g} needs the conditional "
                              "prediction, but the model is unconditional (p_uncond = 1)")
        self.model, self.process, self.param, self.rule = model, process, param, rule
        self.labels, self.null = labels, model.n_classes
        self.evals = 0

    @torch.no_grad()
    def __call__(self, x, t: float, i: int):
        n = len(x)
        tt = torch.full((n,), float(t), dtype=torch.float64)
        mc, mu = self.rule.branches(i, t)
        xs = torch.cat([x[mc], x[mu]])
        cs = torch.cat([self.labels[mc], torch.full((int(mu.sum()),), self.null, dtype=torch.long)])
        cond, uncond = torch.zeros_like(x), torch.zeros_like(x)
        if len(xs):
            out = self.model(xs, torch.cat([tt[mc], tt[mu]]).to(x.dtype), cs).to(x.dtype)
            cond[mc], uncond[mu] = out[: int(mc.sum())], out[int(mc.sum()):]
        self.evals += len(xs)
        space = self.param if self.rule.space == "model" else self.rule.space
        if space != self.param:
            cond, uncond = (self.process.join(*self.process.split(p, x, tt, self.param), x, tt, space).to(x.dtype)
                            for p in (cond, uncond))
        guided = self.rule(cond, uncond, i, float(t), x)
        x0, eps = self.process.split(guided, x, tt, space)
        if self.rule.renoise == "uncond":  # CFG++: the step re-noises with the unconditional ε
            eps = self.process.split(uncond, x, tt, space)[1]
        return x0.to(x.dtype), eps.to(x.dtype)


def sample(model, process: Process, param: str, rule: Rule, times: torch.Tensor, labels: torch.Tensor,
           gen: torch.Generator, sampler: str = "ddim", shape: tuple = (), x_init: torch.Tensor | None = None,
           dtype=torch.float32):
    """Samples for `labels` (one per sample); returns (x0, {"nfe": evaluations per sample})."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler '{sampler}' unknown; valid: {', '.join(SAMPLERS)}")
    n, steps = len(labels), len(times) - 1
    if steps < 1:
        raise ConfigError("a sampler needs at least one step")
    if sampler == "edm" and float(process.alpha(times[0])) <= 0:
        raise ConfigError("the edm sampler integrates in x / α and needs α(t_0) > 0: use the edm or logsnr grid "
                          "(they start at t = 0.999 on the flow path)")
    g = Guided(model, process, param, rule, labels)
    rule.start(n, steps)
    a = lambda t: float(process.alpha(t))  # noqa: E731
    s = lambda t: float(process.sigma(t))  # noqa: E731
    x = x_init if x_init is not None else s(times[0]) * torch.randn((n, *shape), generator=gen, dtype=dtype)
    x = x.to(dtype)
    for i in range(steps):
        t, tn = float(times[i]), float(times[i + 1])
        x0, eps = g(x, t, i)
        if tn == 0.0:
            x = x0
            continue
        if sampler in ("ddim", "ddpm"):
            x = posterior_step(process, x0, eps, t, tn, sampler == "ddpm", gen)
        elif sampler in ("euler", "midpoint", "heun"):
            v = _velocity(process, x0, eps, t)
            if sampler == "euler":
                x = x + (tn - t) * v
            elif sampler == "midpoint":
                tm = 0.5 * (t + tn)
                xm = x + (tm - t) * v
                x = x + (tn - t) * _velocity(process, *g(xm, tm, i), tm)
            else:
                xe = x + (tn - t) * v
                x = x + (tn - t) * 0.5 * (v + _velocity(process, *g(xe, tn, i), tn))
        else:  # edm
            r, rn = float(process.noise_ratio(t)), float(process.noise_ratio(tn))
            xh = x / a(t)
            xe = xh + (rn - r) * eps
            _, eps2 = g(a(tn) * xe, tn, i)
            x = a(tn) * (xh + (rn - r) * 0.5 * (eps + eps2))
    return x, {"nfe": g.evals / n}


def posterior_step(process: Process, x0, eps, t: float, tn: float, ancestral: bool, gen: torch.Generator):
    """x at tn < t from the estimates (x̂0, ε̂) at t: DDIM (deterministic) or, with `ancestral`, a draw from the
    DDPM posterior q(x_tn | x_t, x̂0) (one normal draw from `gen`)."""
    a, s = float(process.alpha(tn)), float(process.sigma(tn))
    if not ancestral:
        return a * x0 + s * eps
    at, st = float(process.alpha(t)), float(process.sigma(t))
    s2_ts = st ** 2 - (at / a) ** 2 * s ** 2  # variance of x_t given x_tn
    var = s2_ts * s ** 2 / st ** 2  # posterior variance of x_tn given x_t, x0
    z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    return a * x0 + max(s ** 2 - var, 0.0) ** 0.5 * eps + var ** 0.5 * z


def renoise(process: Process, x, tn: float, t: float, gen: torch.Generator):
    """A draw from the forward transition q(x_t | x_tn) (t > tn): the 'time travel' of recurrent guidance."""
    a = float(process.alpha(t)) / float(process.alpha(tn))
    var = float(process.sigma(t)) ** 2 - a ** 2 * float(process.sigma(tn)) ** 2
    return a * x + max(var, 0.0) ** 0.5 * torch.randn(x.shape, generator=gen, dtype=x.dtype)


def _velocity(process: Process, x0, eps, t: float):
    return float(process.dalpha(t)) * x0 + float(process.dsigma(t)) * eps
