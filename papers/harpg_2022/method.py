r"""Normalized policy-gradient methods with momentum (Fatkhullin, Barakat, Kireeva & He 2023,
"Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate
Policies"). All are single-loop and use one or two trajectories per iteration; g(τ, θ) is the
G(PO)MDP estimate of ∇J(θ) and B(τ, θ) its unbiased Hessian estimate (common.rl.episodes).

    REINFORCE  θ_{t+1} = θ_t + α g(τ_t, θ_t)                         τ_t ~ π_{θ_t}
    N-PG       θ_{t+1} = θ_t + γ_t g(τ_t, θ_t) / ‖g(τ_t, θ_t)‖
    N-PG-IGT   θ̃_t = θ_t + (1 - η_t)/η_t (θ_t - θ_{t-1})                (implicit gradient transport)
               d_t = (1 - η_t) d_{t-1} + η_t g(τ_t, θ̃_t)                 τ_t ~ π_{θ̃_t}
               θ_{t+1} = θ_t + γ_t d_t / ‖d_t‖
    N-HARPG    θ̂_t = q_t θ_t + (1 - q_t) θ_{t-1},  q_t ~ U(0, 1)
               v_t = B(τ̂_t, θ̂_t)(θ_t - θ_{t-1})                          τ̂_t ~ π_{θ̂_t}
               d_t = (1 - η_t)(d_{t-1} + v_t) + η_t g(τ_t, θ_t)          τ_t ~ π_{θ_t}
               θ_{t+1} = θ_t + γ_t d_t / ‖d_t‖

Since E_q[B(θ̂)(θ_t - θ_{t-1})] = ∇J(θ_t) - ∇J(θ_{t-1}), HARPG's d_t is an unbiased recursive
(STORM-like) estimate of ∇J(θ_t); IGT's extrapolation cancels the first-order lag of the momentum.
Schedules: η_t = (2/(t+2))^a, γ_t = γ_0 (2/(t+2))^b with (a, b) = (4/5, 3/5) for N-PG-IGT,
(1, 1/2) for N-HARPG and b = 1/2 for N-PG: our reading of the paper's theorems (ε^-2.5 and ε^-2
sample complexity), unverified.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optrepro.rl.episodes import gpomdp_surrogate, hvp_estimate
from optrepro.rl.policy import flat, set_flat

SCHEDULES = {"reinforce": (0.0, 0.0), "npg": (0.0, 0.5), "npg_igt": (0.8, 0.6), "nharpg": (1.0, 0.5)}


def schedule(algo: str, t: int, gamma0: float) -> tuple[float, float]:
    """(η_t, γ_t) for iteration t >= 0."""
    a, b = SCHEDULES[algo]
    r = 2.0 / (t + 2)
    return r ** a, gamma0 * r ** b


def pg_estimate(policy, params, episodes, gamma: float) -> torch.Tensor:
    return flat(torch.autograd.grad(gpomdp_surrogate(policy, episodes, gamma), params)).detach()


@dataclass
class State:
    theta_prev: torch.Tensor | None = None
    d: torch.Tensor | None = None
    t: int = 0


def step(algo: str, policy, params, sample, gamma: float, gamma0: float, st: State,
         gen: torch.Generator | None = None, hessian_scale: float = 1.0) -> tuple[list, int]:
    """One iteration in place. `sample(n)` draws n episodes from the policy's current parameters.
    `hessian_scale` multiplies v_t (1: N-HARPG; 0: the ablation without the Hessian correction).
    Returns (the episodes the gradient was estimated from, for the learning curve: at θ_t, or at
    θ̃_t for N-PG-IGT; the number of episodes drawn)."""
    theta = flat(params).detach().clone()
    eta, lr = schedule(algo, st.t, gamma0)
    drawn = 1
    if algo in ("reinforce", "npg"):
        eps = sample(1)
        g = pg_estimate(policy, params, eps, gamma)
        new = theta + (gamma0 * g if algo == "reinforce" else lr * g / (g.norm() + 1e-12))
    elif algo == "npg_igt":
        if st.theta_prev is None:
            eps = sample(1)
            d = pg_estimate(policy, params, eps, gamma)
        else:
            set_flat(params, theta + (1 - eta) / eta * (theta - st.theta_prev))
            eps = sample(1)                      # drawn at the extrapolated point θ̃_t
            d = (1 - eta) * st.d + eta * pg_estimate(policy, params, eps, gamma)
            set_flat(params, theta)
        new = theta + lr * d / (d.norm() + 1e-12)
    elif algo == "nharpg":
        eps = sample(1)
        g = pg_estimate(policy, params, eps, gamma)
        if st.theta_prev is None:
            d = g
        else:
            q = float(torch.rand((), generator=gen))
            set_flat(params, q * theta + (1 - q) * st.theta_prev)
            hat = sample(1)
            v = hessian_scale * hvp_estimate(policy, params, hat, gamma, theta - st.theta_prev).detach()
            set_flat(params, theta)
            d = (1 - eta) * (st.d + v) + eta * g
            drawn = 2
        new = theta + lr * d / (d.norm() + 1e-12)
    else:
        raise ValueError(f"unknown algo {algo}")
    st.theta_prev, st.t = theta, st.t + 1
    if algo in ("npg_igt", "nharpg"):
        st.d = d
    set_flat(params, new)
    return eps, drawn
