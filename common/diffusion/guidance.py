"""Guidance rules: one interface, every rule.

A rule sees, at sampler step i of n (time t, state x), the conditional and unconditional predictions
(in the `space` it asks for: the model's own output, `eps`, `x0` or `velocity`) and returns the
guided prediction in that space. Before the network runs it says which samples need which branch
(`branches`), so rules that skip evaluations (Adaptive Guidance, CFG-Zero*'s zeroed first steps, plain
conditional sampling) cost fewer network evaluations, and the sampler counts them. Rules keep their
own memory (APG's momentum, AG's switch) from `start` to the end of one sampling run. Samplers never
look at which rule they run.

Scale convention: γ, as in diffusers' `guidance_scale`: guided = u + γ (c - u); γ = 1 is the
conditional model, γ = 0 the unconditional one. The CFG paper's w is γ - 1.
"""
from __future__ import annotations

import math

import torch

from optrepro.errors import ConfigError


def _dot(a, b):
    return (a * b).flatten(1).sum(1).reshape(-1, *([1] * (a.dim() - 1)))


class Rule:
    space = "model"
    needs_uncond = True
    renoise = "guided"
    """Which ε the sampler's step re-noises with: the guided one (every rule but CFG++) or `uncond`."""

    def __init__(self, scale: float):
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise ConfigError(f"guidance scale must be a finite number >= 0, got {scale!r}")
        self.scale = float(scale)
        self.needs_uncond = self.scale != 1.0
        self.needs_cond = self.scale != 0.0

    def start(self, n: int, steps: int) -> None:
        self.n, self.steps, self.trace = n, steps, []

    def branches(self, i: int, t: float):
        """(cond, uncond): boolean masks over the n samples of the branches to evaluate at step i."""
        ones = torch.ones(self.n, dtype=torch.bool)
        return ones if self.needs_cond else ~ones, ones if self.needs_uncond else ~ones

    def __call__(self, cond, uncond, i: int, t: float, x):
        raise NotImplementedError


class CFG(Rule):
    """Classifier-free guidance (Ho & Salimans 2022): u + γ (c - u)."""

    def __call__(self, cond, uncond, i, t, x):
        if not self.needs_uncond:
            return cond
        if not self.needs_cond:
            return uncond
        return uncond + self.scale * (cond - uncond)


class CFGPP(CFG):
    """CFG++ (Chung et al. 2024) on ε: the denoised estimate uses the guided ε̂ = ε_u + w (ε_c - ε_u), and the
    sampler's step re-noises with the unconditional ε_u (DDIM: x_next = α_next x̂0(ε̂) + σ_next ε_u). Its w is
    on [0, 1] in the paper (w = 0: unconditional DDIM); larger w is allowed. `schedule`, when given, is a
    callable (t, ||ε_c - ε_u|| per sample) -> w per sample, replacing the constant w (the annealing
    scheduler of Yehezkel et al. 2025); the mean w of each step is traced."""

    space = "eps"
    renoise = "uncond"

    def __init__(self, scale: float, schedule=None):
        super().__init__(scale)
        self.schedule = schedule
        self.needs_uncond = True  # the re-noising uses it at every w
        self.needs_cond = self.scale != 0.0 or schedule is not None

    def __call__(self, cond, uncond, i, t, x):
        delta = cond - uncond
        if self.schedule is None:
            return uncond + self.scale * delta
        w = self.schedule(t, delta.flatten(1).norm(dim=1)).to(delta.dtype)
        self.trace.append(float(w.mean()))
        return uncond + w.reshape(-1, *([1] * (delta.dim() - 1))) * delta


class CFGZeroStar(CFG):
    """CFG-Zero* (Fan et al. 2025) on the velocity: the unconditional velocity is rescaled by
    s* = <v_c, v_u> / ||v_u||² per sample before guiding, s* v_u + γ (v_c - s* v_u), and the first
    `zero_steps` steps output zero velocity (no network evaluation)."""

    space = "velocity"

    def __init__(self, scale: float, zero_steps: int = 1, optimized_scale: bool = True):
        super().__init__(scale)
        if isinstance(zero_steps, bool) or not isinstance(zero_steps, int) or zero_steps < 0:
            raise ConfigError(f"zero_steps must be an integer >= 0, got {zero_steps!r}")
        self.zero_steps, self.optimized_scale = zero_steps, optimized_scale

    def branches(self, i, t):
        if i < self.zero_steps:  # zero velocity: no branch is evaluated
            none = torch.zeros(self.n, dtype=torch.bool)
            return none, none
        return super().branches(i, t)

    def __call__(self, cond, uncond, i, t, x):
        if i < self.zero_steps:
            return torch.zeros_like(cond)
        if not self.needs_uncond:
            return cond
        s = _dot(cond, uncond) / (_dot(uncond, uncond) + 1e-8) if self.optimized_scale else 1.0
        self.trace.append(float(torch.as_tensor(s).mean()))
        return s * uncond + self.scale * (cond - s * uncond)


class APG(Rule):
    """Adaptive projected guidance (Sadat et al. 2024), on the denoised prediction by default:
    Δ = D_c - D_u, with momentum Δ ← Δ + β Δ̄ (Δ̄: the previous step's Δ), rescaled to norm at most r,
    split into parts parallel and orthogonal to D_c, guided = D_c + (γ - 1)(Δ_⊥ + η Δ_∥).
    With η = 1, r = ∞, β = 0 it is CFG."""

    def __init__(self, scale: float, eta: float = 0.0, norm_threshold: float = 0.0, momentum: float = 0.0,
                 space: str = "x0"):
        super().__init__(scale)
        self.eta, self.r, self.beta, self.space = eta, norm_threshold, momentum, space
        if norm_threshold < 0:
            raise ConfigError(f"APG norm_threshold must be >= 0 (0: no rescaling), got {norm_threshold}")

    def start(self, n, steps):
        super().start(n, steps)
        self.avg = None

    def __call__(self, cond, uncond, i, t, x):
        if not self.needs_uncond:
            return cond
        diff = cond - uncond
        if self.beta != 0:
            diff = diff if self.avg is None else diff + self.beta * self.avg
            self.avg = diff
        if self.r > 0:
            diff = diff * torch.clamp(self.r / _dot(diff, diff).sqrt().clamp_min(1e-30), max=1.0)
        c = cond.double()
        par = _dot(diff.double(), c) / _dot(c, c).clamp_min(1e-30) * c
        update = (diff.double() - par) + self.eta * par
        return cond + (self.scale - 1.0) * update.to(cond.dtype)


class AdaptiveGuidance(CFG):
    """Adaptive Guidance (Castillo et al. 2023): CFG until the cosine similarity of the conditional and
    unconditional predictions exceeds `threshold` (γ̄), then the conditional prediction alone for the
    remaining steps, per sample: the unconditional branch is no longer evaluated. The similarity is of
    the ε predictions (the paper's); `space: x0` measures it on the denoised predictions instead."""

    space = "eps"

    def __init__(self, scale: float, threshold: float = 0.99, space: str = "eps"):
        super().__init__(scale)
        self.space = space
        if not -1 <= threshold <= 1:
            raise ConfigError(f"AG threshold is a cosine similarity in [-1, 1], got {threshold}")
        self.threshold = threshold

    def start(self, n, steps):
        super().start(n, steps)
        self.switched = torch.zeros(n, dtype=torch.bool)

    def branches(self, i, t):
        c, u = super().branches(i, t)
        return c, u & ~self.switched

    def __call__(self, cond, uncond, i, t, x):
        if not self.needs_uncond:
            return cond
        active = ~self.switched
        cos = torch.nn.functional.cosine_similarity(cond.flatten(1), uncond.flatten(1), dim=1)
        self.trace.append(float(cos[active].mean()) if active.any() else float("nan"))
        out = torch.where(active.reshape(-1, *([1] * (cond.dim() - 1))), super().__call__(cond, uncond, i, t, x), cond)
        self.switched = self.switched | (active & (cos > self.threshold))
        return out


RULES = {"cfg": CFG, "cfgpp": CFGPP, "cfg_zero_star": CFGZeroStar, "apg": APG, "ag": AdaptiveGuidance}


def make_rule(name: str, scale: float, args: dict | None = None) -> Rule:
    if name not in RULES:
        raise ConfigError(f"guidance rule '{name}' unknown; valid: {', '.join(RULES)}")
    try:
        return RULES[name](scale, **(args or {}))
    except TypeError as e:
        raise ConfigError(f"guidance rule '{name}': bad arguments {args}: {e}") from None
