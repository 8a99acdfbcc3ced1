"""Training-free guidance (Ye et al. 2024, "TFG: Unified Training-Free Guidance for Diffusion Models"):
an unconditional model, a predictor log f(x0) of a target property (here a class), and one algorithm whose
settings are the earlier methods.

At each step t -> tn, repeated `recur` times ("recurrence", time travel):

    δ_k ~ N(0, σ̄_t² I), k = 1..mc          (implicit dynamics: log f̃(x) = log mean_k f(x + δ_k))
    x̂0 = x̂0(x_t)                           (the model's denoised estimate, ε̂ with it)
    Δ_t = ρ_t ∇_{x_t} log f̃(x̂0(x_t))        (variance guidance: through the model)
    Δ_0: `iters` ascent steps x0' += μ_t ∇ log f̃(x0') from x0' = x̂0   (mean guidance)
    x_tn = S(x_t, x̂0, ε̂) + (α(tn)/α(t)) Δ_t + α(tn) Δ_0                (S: the DDIM or DDPM step)
    x_t ~ q(x_t | x_tn)   (before the next recurrence)

(the authors' step, with ᾱ = α² of a VP process: Δ_t / √(ᾱ_t/ᾱ_tn) and √ᾱ_tn Δ_0). The step sizes
follow schedules normalised to mean 1 over the steps: ρ_t = ρ w_t, μ_t = μ w_t with w_t ∝ ᾱ_t/ᾱ_tn
("increase"), 1 - ᾱ_t/ᾱ_tn ("decrease") or 1 ("constant"); σ̄_t = σ̄ √(1 - ᾱ_t) ("decrease") or σ̄.
The authors' gradient clipping is left out.

Special cases (tests/reference/test_tfg.py checks each against its own paper's update written out):
DPS (ρ), LGD (ρ, σ̄), FreeDoM (ρ, recurrence), MPGD (μ, one iteration), UGD (ρ, μ, iterations,
recurrence). `beam_search` is the paper's hyper-parameter search: start small, double one
hyper-parameter at a time, keep the best `beam` settings, within a budget of evaluated settings.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import posterior_step, renoise
from optrepro.errors import ConfigError

SCHEDULES = ("increase", "decrease", "constant")
SEARCHABLE = ("rho", "mu", "sigma")


@dataclass
class TFGParams:
    rho: float = 0.0
    mu: float = 0.0
    sigma: float = 0.0
    recur: int = 1
    iters: int = 1
    mc: int = 4
    rho_schedule: str = "increase"
    mu_schedule: str = "increase"
    sigma_schedule: str = "decrease"

    def check(self) -> None:
        for k in SEARCHABLE:
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"TFG {k} must be a finite number >= 0, got {v!r}")
        for k in ("recur", "iters", "mc"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"TFG {k} must be an integer >= 1, got {v!r}")
        for k in ("rho_schedule", "mu_schedule"):
            if getattr(self, k) not in SCHEDULES:
                raise ConfigError(f"TFG {k} '{getattr(self, k)}' unknown; valid: {', '.join(SCHEDULES)}")
        if self.sigma_schedule not in ("decrease", "constant"):
            raise ConfigError(f"TFG sigma_schedule '{self.sigma_schedule}' unknown; valid: decrease, constant")


def step_weights(kind: str, process: Process, times: torch.Tensor) -> torch.Tensor:
    """Per-step weights of a ρ / μ schedule, normalised to mean 1."""
    a = process.alpha(times)
    ratio = (a[:-1] / a[1:]) ** 2  # ᾱ_t / ᾱ_tn of each step
    w = {"increase": ratio, "decrease": 1 - ratio, "constant": torch.ones_like(ratio)}[kind]
    return w * len(w) / w.sum()


def smoothed_log_f(log_f, x0, delta):
    """log mean_k f(x0 + δ_k) over the rows of delta [K, n, ...] (K = 1, δ = 0: log f itself)."""
    k = delta.shape[0]
    flat = (x0[None] + delta).reshape(-1, *x0.shape[1:])
    return torch.logsumexp(log_f(flat).reshape(k, -1), 0) - math.log(k)


def _grad(fn, x):
    with torch.enable_grad():
        z = x.detach().requires_grad_()
        return torch.autograd.grad(fn(z).sum(), z)[0]


def tfg_sample(model, process: Process, param: str, log_f, times: torch.Tensor, n: int, gen: torch.Generator,
               p: TFGParams, ancestral: bool = True, shape: tuple = (), dtype=torch.float64):
    """n samples of the unconditional `model` (queried with the 'no label' index) guided by `log_f`
    (x0 [n, ...] -> log f [n]); returns (x, {"nfe": network evaluations per sample})."""
    p.check()
    null = torch.full((n,), model.n_classes, dtype=torch.long)
    rho_w, mu_w = step_weights(p.rho_schedule, process, times), step_weights(p.mu_schedule, process, times)
    x = float(process.sigma(times[0])) * torch.randn((n, *shape), generator=gen, dtype=dtype)
    evals = 0
    for i in range(len(times) - 1):
        t, tn = float(times[i]), float(times[i + 1])
        tt = torch.full((n,), t, dtype=torch.float64)
        rho, mu = p.rho * float(rho_w[i]), p.mu * float(mu_w[i])
        sd = p.sigma * (float(process.sigma(t)) if p.sigma_schedule == "decrease" else 1.0)
        for r in range(p.recur):
            delta = (sd * torch.randn((p.mc, n, *shape), generator=gen, dtype=dtype) if sd > 0
                     else torch.zeros((1, n, *shape), dtype=dtype))
            with torch.enable_grad():
                xg = x.detach().requires_grad_(rho != 0)
                x0, eps = process.split(model(xg, tt.to(dtype), null), xg, tt, param)
                var_g = (torch.autograd.grad(smoothed_log_f(log_f, x0, delta).sum(), xg)[0] if rho != 0
                         else torch.zeros_like(x))
            evals += n
            x0, eps = x0.detach(), eps.detach()
            new = x0
            if mu != 0:
                for _ in range(p.iters):
                    new = new + mu * _grad(lambda z: smoothed_log_f(log_f, z, delta), new)
            x_prev = (posterior_step(process, x0, eps, t, tn, ancestral, gen)
                      + rho * float(process.alpha(tn)) / float(process.alpha(t)) * var_g
                      + float(process.alpha(tn)) * (new - x0))
            if r < p.recur - 1:
                x = renoise(process, x_prev, tn, t, gen)
        x = x_prev.detach()
    return x, {"nfe": evals / n}


def beam_search(evaluate, active: list, start: TFGParams, budget: int, beam: int = 2):
    """The paper's search over the `active` hyper-parameters (a subset of rho, mu, sigma): evaluate `start`,
    then repeatedly double one active hyper-parameter of each of the `beam` best settings so far, until
    `budget` settings were evaluated or no new setting is left. `evaluate(TFGParams) -> score` (lower is
    better). Returns (best params, [(params as dict, score)] in evaluation order)."""
    bad = [a for a in active if a not in SEARCHABLE]
    if bad or budget < 1 or beam < 1:
        raise ConfigError(f"search over {active} (valid: {', '.join(SEARCHABLE)}), budget {budget} and beam {beam} "
                          "must be >= 1")
    for a in active:
        if getattr(start, a) <= 0:
            raise ConfigError(f"the search doubles {a}: its start value must be > 0, got {getattr(start, a)}")
    seen: dict = {}

    def key(q):
        return tuple(getattr(q, a) for a in SEARCHABLE)

    def ev(q):
        if key(q) not in seen:
            seen[key(q)] = (q, float(evaluate(q)))

    ev(start)
    while len(seen) < budget and active:
        ranked = sorted(seen.values(), key=lambda e: (e[1] != e[1], e[1]))  # NaN last
        cands = []
        for q, _ in ranked[:beam]:
            for a in active:
                c = TFGParams(**{**asdict(q), a: getattr(q, a) * 2})
                if key(c) not in seen and key(c) not in [key(x) for x in cands]:
                    cands.append(c)
        if not cands:
            break
        for c in cands[: budget - len(seen)]:
            ev(c)
    log = [(asdict(q), s) for q, s in seen.values()]
    best = min(seen.values(), key=lambda e: (e[1] != e[1], e[1]))[0]
    return best, log
