"""SLUG (Cai, Tan, Asif 2024): unlearn by one step on one layer, from one gradient of each loss.

1. One gradient of the forget loss, g_f = ∇L_f(θ), and one of the retain loss, g_r = ∇L_r(θ), at the
   trained model (two backward passes in all).
2. For every layer l (a weight matrix), its importance for the forget set and its alignment with
   the retain set:
       importance  I_l = ||g_f,l|| / ||θ_l||         (how far the forget loss pulls the layer, relative)
       alignment   A_l = |cos(g_f,l, g_r,l)|           (how much the same move also changes the retain loss)
3. The candidates are the Pareto front of (high I, low A).
4. For each candidate, a binary search on the step size λ of the single update
       θ_l <- θ_l + λ (||θ_l|| / ||g_f,l||) g_f,l        (ascent on the forget loss, size relative to the layer)
   finds the smallest λ that meets the forgetting criterion (forward passes only); the candidate
   whose update keeps the retain metric highest is applied.

No iteration and no further gradient: the cost is two gradients plus the forward passes of the search.
The scores, the front and the search follow the paper's description; the criterion used to stop the
search is each benchmark's (papers/slug_2024/README.md), not a value from the paper."""
from __future__ import annotations

from dataclasses import dataclass

import torch


def layer_params(model) -> dict:
    """The layers SLUG chooses among: every parameter with two or more dimensions."""
    return {n: p for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad}


def gradient(model, loss_fn, names) -> dict:
    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    ps = dict(model.named_parameters())
    out = {n: ps[n].grad.detach().clone() for n in names}
    model.zero_grad(set_to_none=True)
    return out


def layer_scores(params: dict, g_forget: dict, g_retain: dict) -> dict:
    """name -> (importance, alignment)."""
    out = {}
    for n, p in params.items():
        gf, gr = g_forget[n].flatten(), g_retain[n].flatten()
        imp = float(gf.norm() / p.detach().norm().clamp_min(1e-12))
        align = float((gf @ gr).abs() / (gf.norm() * gr.norm()).clamp_min(1e-12))
        out[n] = (imp, align)
    return out


def pareto_front(scores: dict) -> list:
    """Layers not dominated by another (higher-or-equal importance and lower-or-equal alignment, one strictly)."""
    front = []
    for n, (i, a) in scores.items():
        dominated = any((i2 >= i and a2 <= a) and (i2 > i or a2 < a) for m, (i2, a2) in scores.items() if m != n)
        if not dominated:
            front.append(n)
    return sorted(front, key=lambda n: -scores[n][0])


@torch.no_grad()
def apply_step(param, g, lam: float, base: torch.Tensor) -> None:
    """param <- base + lam (||base|| / ||g||) g."""
    param.copy_(base + lam * (base.norm() / g.norm().clamp_min(1e-12)) * g)


def binary_search(set_lambda, forgot, lo: float = 0.0, hi: float = 0.05, iters: int = 8, max_hi: float = 2.0):
    """The smallest λ in [lo, hi] (hi doubled up to max_hi until it works) with forgot(λ) true; None if
    even max_hi does not forget. forgot is assumed monotone in λ. Returns (λ, evaluations)."""
    evals = 0
    while True:
        set_lambda(hi)
        evals += 1
        if forgot():
            break
        if hi >= max_hi:
            return None, evals
        lo, hi = hi, min(2 * hi, max_hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        set_lambda(mid)
        evals += 1
        if forgot():
            hi = mid
        else:
            lo = mid
    set_lambda(hi)
    return hi, evals


@dataclass
class SlugResult:
    layer: str
    lam: float
    front: list
    scores: dict
    evals: int
    """Forward-only evaluations spent by the search."""


def slug(model, forget_loss, retain_loss, forgot, retain_metric, max_candidates: int = 4) -> SlugResult:
    """Run SLUG in place on `model`. forget_loss / retain_loss: () -> scalar tensor (the one gradient of
    each); forgot: () -> bool, the stopping criterion; retain_metric: () -> float (higher is better)."""
    params = layer_params(model)
    gf = gradient(model, forget_loss, params)
    gr = gradient(model, retain_loss, params)
    scores = layer_scores(params, gf, gr)
    front = pareto_front(scores)[:max_candidates]
    best, evals = None, 0
    for name in front:
        base = params[name].detach().clone()
        lam, k = binary_search(lambda lam_: apply_step(params[name], gf[name], lam_, base), forgot)
        evals += k
        if lam is not None:
            keep = retain_metric()
            evals += 1
            if best is None or keep > best[2]:
                best = (name, lam, keep)
        with torch.no_grad():
            params[name].copy_(base)
    if best is None:  # no candidate reaches the criterion: take the largest step on the most important layer
        best = (front[0], 2.0, float("nan"))
    name, lam, _ = best
    with torch.no_grad():
        apply_step(params[name], gf[name], lam, params[name].detach().clone())
    return SlugResult(name, lam, front, scores, evals)
