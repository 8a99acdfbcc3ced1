"""Annealing guidance (Yehezkel, Dahary, Voynov & Cohen-Or 2025): a small network w_θ(t, ||δ_t||, λ) sets the
guidance scale of CFG++ at every step from the time, the norm of δ_t = ε_c(z_t) - ε_u(z_t) and a user
preference λ in [0, 1]; the diffusion model stays frozen.

Training (the paper's Sec. 4, as we read it; written from the equations, no code copied). For data x0 of
class c, a step index i of the sampler's grid (t = times[i], t' = times[i + 1] > 0), ε ~ N(0, I) and λ ~ U[0, 1]:

    z_t  = α_t x0 + σ_t ε
    ε̂   = ε_u(z_t) + w (ε_c(z_t) - ε_u(z_t)),           w = w_θ(t, ||δ_t||, λ)
    z_t' = α_t' x̂0(ε̂) + σ_t' ε_u(z_t),                 x̂0(ε̂) = (z_t - σ_t ε̂) / α_t   (one CFG++ DDIM step)
    L    = (1 - λ) ||ε̂ - ε||² / d  +  λ ||ε_c(z_t') - ε_u(z_t')||² / d

The ε-loss keeps ε̂ a good noise estimate (quality); the δ-loss asks the step to land where the conditional
and unconditional predictions agree (alignment). The δ-loss reaches θ through the frozen model's second
evaluation at z_t'. At sampling, w_θ replaces CFG++'s constant w (common.diffusion.guidance.CFGPP)."""
from __future__ import annotations

import math

import torch
from torch import nn

from optrepro.diffusion.guidance import CFGPP


def _features(v: torch.Tensor, k: int) -> torch.Tensor:
    """[v, sin(π j v), cos(π j v) for j = 1..k]: a smooth embedding of a scalar in about [0, 1]."""
    j = torch.arange(1, k + 1, dtype=v.dtype) * math.pi
    return torch.cat([v[:, None], (v[:, None] * j).sin(), (v[:, None] * j).cos()], 1)


class Scheduler(nn.Module):
    """w_θ(t, ||δ||, λ): an MLP on Fourier features of t (process time in [0, 1]), ||δ|| / `delta_scale` and λ.
    The last layer starts at zero, so an untrained scheduler is constant CFG++ at `w_init`."""

    def __init__(self, hidden: int = 64, layers: int = 2, freqs: int = 4, delta_scale: float = 1.0,
                 w_init: float = 1.0):
        super().__init__()
        self.freqs, self.delta_scale, self.w_init = freqs, float(delta_scale), float(w_init)
        dims = [3 * (2 * freqs + 1)] + [hidden] * layers
        mods = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.SiLU()]
        self.body = nn.Sequential(*mods)
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, t, delta_norm, lam):
        n = len(delta_norm)
        col = lambda v: torch.as_tensor(v, dtype=torch.float32).reshape(-1).expand(n)  # noqa: E731
        h = torch.cat([_features(col(t), self.freqs), _features(col(delta_norm) / self.delta_scale, self.freqs),
                       _features(col(lam), self.freqs)], 1)
        return self.w_init + self.head(self.body(h)).squeeze(1)


def scheduled_rule(scheduler: Scheduler, lam: float) -> CFGPP:
    """CFG++ whose w at each step is the scheduler's at preference λ (no gradient)."""
    def schedule(t, delta_norm):
        with torch.no_grad():
            return scheduler(t, delta_norm, lam).double()
    return CFGPP(1.0, schedule=schedule)


def perturbed_embedding(model, labels, t, tau: tuple, scale: float, gen: torch.Generator):
    """The paper's prompt perturbation (after CADS, Sadat et al. 2024), on the MLP's class embedding e:
    sqrt(γ(t)) e + scale sqrt(1 - γ(t)) n with n ~ N(0, I) and γ(t) = 1 for t <= τ1, 0 for t >= τ2, linear
    between: at high noise the condition the scheduler sees is unreliable, as it is at inference."""
    e = model.cemb(labels)
    g = ((tau[1] - t.float()) / (tau[1] - tau[0])).clamp(0.0, 1.0)[:, None]
    return g.sqrt() * e + scale * (1 - g).sqrt() * torch.randn(e.shape, generator=gen)


def scheduler_loss(model, process, scheduler: Scheduler, x0, labels, eps, t, tn, lam, null: int,
                   cond_embed=None):
    """(loss, parts): the paper's objective on one batch. t, tn: per-sample current and next times (tn > 0);
    lam: per-sample λ; null: the model's "no label" class; cond_embed: a perturbed class embedding for the
    first evaluation (None: none). The model is frozen (no parameter gradients)."""
    zt = process.noisy(x0, eps, t)
    uncond_labels = torch.full_like(labels, null)
    with torch.no_grad():  # z_t does not depend on θ
        ec = model(zt, t.float(), labels) if cond_embed is None else model(zt, t.float(), labels, cond_embed=cond_embed)
        eu = model(zt, t.float(), uncond_labels)
    delta = ec - eu
    w = scheduler(t, delta.flatten(1).norm(dim=1), lam).to(x0.dtype)
    eps_hat = eu + w.reshape(-1, *([1] * (x0.dim() - 1))) * delta
    z_next = process.noisy(process.split(eps_hat, zt, t, "eps")[0], eu, tn)  # x̂0(ε̂), re-noised with ε_u
    delta_next = model(z_next, tn.float(), labels) - model(z_next, tn.float(), uncond_labels)
    d = x0[0].numel()
    l_eps = ((eps_hat - eps) ** 2).flatten(1).sum(1) / d
    l_delta = (delta_next ** 2).flatten(1).sum(1) / d
    loss = ((1 - lam) * l_eps + lam * l_delta).mean()
    return loss, {"eps_loss": float(l_eps.detach().mean()), "delta_loss": float(l_delta.detach().mean()),
                  "w": float(w.detach().mean())}


def train_scheduler(model, process, draw, times: torch.Tensor, null: int, steps: int, batch: int, lr: float,
                    gen: torch.Generator, scheduler: Scheduler | None = None, clip: float = 1.0, log=None,
                    lam: float | None = None, perturb: dict | None = None) -> Scheduler:
    """AdamW on `scheduler_loss` with the model frozen. draw(n, gen) -> (x0, labels) is the training data;
    step indices are uniform over the grid's steps whose next time is > 0; λ ~ U[0, 1] (or fixed `lam`);
    perturb: {tau: [τ1, τ2], scale} for `perturbed_embedding` (None: no prompt perturbation)."""
    scheduler = scheduler or Scheduler()
    for p in model.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(scheduler.parameters(), lr=lr)
    inner = int((times[1:] > 0).sum())  # steps i with times[i + 1] > 0
    for step in range(steps):
        x0, labels = draw(batch, gen)
        i = torch.randint(0, inner, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        lam_b = torch.rand(batch, generator=gen, dtype=torch.float64) if lam is None \
            else torch.full((batch,), float(lam), dtype=torch.float64)
        t, tn = times[i].to(x0.dtype), times[i + 1].to(x0.dtype)
        emb = perturbed_embedding(model, labels, t, tuple(perturb["tau"]), perturb["scale"], gen) if perturb else None
        loss, parts = scheduler_loss(model, process, scheduler, x0, labels, eps, t, tn, lam_b.to(x0.dtype), null,
                                     cond_embed=emb)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(scheduler.parameters(), clip)
        opt.step()
        if log is not None and (step % 50 == 0 or step == steps - 1):
            log(step, loss=float(loss.detach()), **parts)
    return scheduler
