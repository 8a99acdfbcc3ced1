r"""Trust Region Policy Optimization (Schulman et al. 2015), the practical algorithm of Sec. 6 and
Appendix C, on a batch of on-policy samples (single-path estimates, GAE advantages as in the
TRPO baselines that followed the paper).

    maximize_θ  L(θ) = E_{s,a ~ π_old} [ π_θ(a|s) / π_old(a|s) · Â(s,a) ]
    subject to  KL̄(θ) = E_s [ D_KL(π_old(·|s) ‖ π_θ(·|s)) ] <= δ

1. g = ∇L(θ_old) (the policy gradient);  F = ∇² KL̄(θ_old) (the Fisher matrix, used only through
   products F v = ∇ (∇KL̄ · v), plus damping λ v).
2. s ≈ F⁻¹ g by k conjugate-gradient iterations.
3. The largest step along s the quadratic model allows: β = sqrt(2δ / sᵀF s).
4. Backtracking line search: θ = θ_old + c^j β s for j = 0, 1, ...; accept the first one that
   improves L and keeps KL̄ <= δ; if none does, keep θ_old.

The value function is fitted separately (regression on the batch's returns), as in the paper's
GAE follow-up and in sb3-contrib. `kl="new||old"` measures the line-search KL the way sb3-contrib
does (D_KL(π_θ ‖ π_old)); both directions have the same Fisher matrix, so the direction and the
maximal step are identical and only the acceptance test can differ.

sb3-contrib averages the Gaussian KL over action dimensions as well as states (it takes the mean
of torch's per-dimension KL), so its constraint is on KL/dim_A: for Hopper (3 actions) an
effective δ three times the paper's. `kl_per_action_dim=True` reproduces that convention; the
default is the paper's KL of the whole action distribution. Both agree for discrete and 1-D actions.

`vpg_step` is the paper's "vanilla policy gradient" baseline: one Adam step on -L(θ).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optrepro.rl.policy import flat, kl, set_flat


def conjugate_gradient(avp, b: torch.Tensor, iters: int, x0: torch.Tensor | None = None,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve A x = b for symmetric positive definite A given by x -> A x."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - avp(x) if x0 is not None else b.clone()
    rr = r @ r
    if rr < residual_tol:
        return x
    p = r.clone()
    for i in range(iters):
        ap = avp(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        if i == iters - 1:
            break
        r -= alpha * ap
        rr_new = r @ r
        if rr_new < residual_tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


@dataclass
class TRPOStats:
    surrogate_gain: float
    kl: float
    accepted: float
    backtracks: float


def trpo_step(policy, obs, actions, old_logp, adv, max_kl: float = 0.01, cg_iters: int = 15,
              damping: float = 0.1, backtrack: float = 0.8, max_backtracks: int = 10,
              kl_direction: str = "old||new", x0: torch.Tensor | None = None,
              kl_per_action_dim: bool = False) -> TRPOStats:
    """One TRPO update of `policy`'s actor parameters in place (adv already normalized if wanted)."""
    params = policy.actor_parameters()
    with torch.no_grad():
        old = policy.dist(obs)
    old_logp = old_logp.detach()

    def surrogate_and_kl():
        d = policy.dist(obs)
        sur = (torch.exp(d.log_prob(actions) - old_logp) * adv).mean()
        k = kl(old, d) if kl_direction == "old||new" else kl(d, old)
        if kl_per_action_dim and not policy.discrete:
            k = k / d.loc.shape[-1]
        return sur, k.mean()

    sur, kl0 = surrogate_and_kl()
    g = flat(torch.autograd.grad(sur, params, retain_graph=True))
    grad_kl = flat(torch.autograd.grad(kl0, params, create_graph=True))

    def fvp(v):
        return flat(torch.autograd.grad(grad_kl @ v, params, retain_graph=True)) + damping * v

    s = conjugate_gradient(fvp, g, cg_iters, x0)
    beta = torch.sqrt(2 * max_kl / (s @ fvp(s)))
    theta0 = flat(params).detach().clone()
    sur0 = sur.item()
    coef = 1.0
    with torch.no_grad():
        for j in range(max_backtracks):
            set_flat(params, theta0 + coef * beta * s)
            new_sur, new_kl = surrogate_and_kl()
            if new_kl < max_kl and new_sur > sur0:
                return TRPOStats(new_sur.item() - sur0, new_kl.item(), 1.0, float(j))
            coef *= backtrack
        set_flat(params, theta0)
    return TRPOStats(0.0, 0.0, 0.0, float(max_backtracks))


def vpg_step(policy, opt: torch.optim.Optimizer, obs, actions, adv) -> float:
    """Vanilla policy gradient: one optimizer step on -E[log π(a|s) Â]; returns the loss."""
    loss = -(policy.dist(obs).log_prob(actions) * adv).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()
