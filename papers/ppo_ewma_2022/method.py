r"""PPO-EWMA (Hilton, Cobbe & Schulman 2022): PPO with the proximal policy decoupled from the
behavior policy, made batch size-invariant.

PPO's clipped objective uses one "old" policy for two jobs: importance sampling (it must be the
behavior policy π_behav that collected the data) and limiting the update (any recent policy will
do: the *proximal* policy π_prox). PPO-EWMA takes π_prox = the policy whose weights are an
exponentially-weighted moving average of the trained weights (decay β_prox, bias-corrected):

    r = π_θ(a|s) / π_prox(a|s)
    L = E_{π_behav} [ π_prox(a|s)/π_behav(a|s) · min(r Â, clip(r, 1-ε, 1+ε) Â) ]

and updates the EWMA after every optimizer step. With π_prox = π_behav it is PPO's L^CLIP.
Importance ratios π_θ/π_behav are capped at `imp_samp_max` (the official code's default, 100).

Batch size-invariance (`adjust`): dividing the batch size (env steps per gradient step) by c, do
c times as many steps per sample and keep behaviour as a function of samples by
  - Adam step size α -> α / c, and 1 - β_{1,2} -> (1 - β_{1,2}) / c (Adam's averages span the same
    number of samples),
  - the EWMA's age 1/(1-β_prox) - 1 -> c × that (π_prox is as old in samples as before),
  - advantages normalized by EWMA moments pooling as many samples as before: 1 - β_adv -> (1 - β_adv) / c
    (β_adv = 0, per-batch normalization at the base batch, becomes 1 - 1/c).
PPO gets the same adjustments except the last two have nothing to act on for its proximal
policy: it is always the behavior policy, one iteration old, so it gets younger in samples as c
grows. This is the paper's explanation of why PPO is not batch size-invariant.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch


class EWMAModel:
    """Bias-corrected EWMA of a module's parameters: θ̄ = Σ_k β^{t-k} θ_k / Σ_k β^{t-k} over the
    weights after each update k (and the initial weights), so early on θ̄ is not pulled to θ_0."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.total = 1.0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        new_total = self.decay * self.total + 1.0
        keep = self.decay * self.total / new_total
        for p_avg, p in zip(self.module.parameters(), module.parameters()):
            p_avg.mul_(keep).add_(p, alpha=1.0 - keep)
        self.total = new_total


class EwmaMoments:
    """Mean and variance of advantages pooled over recent batches with exponential weights (decay 0:
    the current batch only, i.e. ordinary per-batch normalization)."""

    def __init__(self, decay: float):
        self.decay, self.w, self.s, self.ss = decay, 0.0, 0.0, 0.0

    def update(self, x: torch.Tensor) -> tuple[float, float]:
        n = x.numel()
        self.w = self.decay * self.w + n
        self.s = self.decay * self.s + float(x.sum())
        self.ss = self.decay * self.ss + float((x.double() ** 2).sum())
        mean = self.s / self.w
        return mean, max(self.ss / self.w - mean ** 2, 0.0)


def clipped_objective(logp: torch.Tensor, logp_behav: torch.Tensor, logp_prox: torch.Tensor,
                      adv: torch.Tensor, clip: float, imp_samp_max: float = 100.0) -> torch.Tensor:
    """Loss (to minimize) of the decoupled clipped objective, in log space for stability."""
    logp_behav = torch.maximum(logp_behav, logp.detach() - math.log(imp_samp_max)) if imp_samp_max > 0 \
        else logp_behav
    unclipped = -adv * torch.exp(logp - logp_behav)
    clipped_ratio = torch.clamp(logp - logp_prox, math.log(1 - clip), math.log(1 + clip))
    clipped = -adv * torch.exp(clipped_ratio + logp_prox - logp_behav)
    return torch.maximum(unclipped, clipped).mean()


@dataclass
class Adjusted:
    lr: float
    betas: tuple
    prox_decay: float
    adv_decay: float


def age_to_decay(age: float) -> float:
    """EWMA decay whose weights have mean age `age` steps: β/(1-β) = age."""
    return age / (1.0 + age)


def decay_to_age(decay: float) -> float:
    return decay / (1.0 - decay)


def adjust(lr: float, betas, prox_decay: float, adv_decay: float, c: float) -> Adjusted:
    """Hyper-parameters for a batch size divided by c (the paper's adjustments, see the docstring)."""
    return Adjusted(lr / c, tuple(1 - (1 - b) / c for b in betas), age_to_decay(c * decay_to_age(prox_decay)),
                    1 - (1 - adv_decay) / c)
