r"""Policy gradient with a Polyak step size (Li et al. 2024).

Gradient ascent on the expected discounted return J(θ) with the step Polyak derived for
f(x) - f* known, transposed to maximization:

    ĝ_t = G(PO)MDP estimate of ∇J(θ_t) (a batch of episodes, time-dependent mean baseline)
    Ĵ_t = mean discounted return of the same batch
    η_t = min( η_max, max(0, J* - Ĵ_t) / (c ‖ĝ_t‖²) )
    θ_{t+1} = θ_t + η_t ĝ_t

J* is unknown in RL. Two estimates: `known` (an upper bound of the discounted return from the
environment's reward range and time limit) and `running_max` (the largest discounted return of
any episode seen so far; the step then shrinks as the batch mean approaches the best episode).
The cap η_max keeps the first steps (‖ĝ‖ small, J* - Ĵ large) finite, as in SPS_max
(Loizou et al. 2021). The exact estimate of J* and the safeguards of the paper could not be
checked here: this is our reading of it.
"""
from __future__ import annotations

import torch


class PolyakStep:
    def __init__(self, params, c: float = 0.5, eta_max: float = 1.0, j_star: str | float = "running_max"):
        if c <= 0 or eta_max <= 0:
            raise ValueError(f"need c > 0 and eta_max > 0, got {c}, {eta_max}")
        self.params, self.c, self.eta_max, self.j_star = list(params), c, eta_max, j_star
        self.best = -float("inf")

    def target(self, episode_returns) -> float:
        self.best = max(self.best, max(episode_returns))
        return self.best if self.j_star == "running_max" else float(self.j_star)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], j_hat: float, episode_returns) -> float:
        """Ascend along `grads` (the estimate of ∇J); returns η_t."""
        sq = sum(float((g ** 2).sum()) for g in grads)
        gap = max(0.0, self.target(episode_returns) - j_hat)
        eta = min(self.eta_max, gap / (self.c * sq)) if sq > 0 else 0.0
        for p, g in zip(self.params, grads):
            p.add_(g, alpha=eta)
        return eta
