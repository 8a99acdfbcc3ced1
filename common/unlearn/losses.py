"""Unlearning objectives (minimized), on a forget batch f and a retain batch r of QA sequences.

With log π(y|x) the summed log-probability of the answer tokens, |y| their number and
NLL(b) the token-mean cross-entropy of batch b:

    GA        L = -NLL(f)                                   gradient ascent on the forget set
    GradDiff  L = -NLL(f) + λ NLL(r)                        (Liu et al. 2022; TOFU's "Grad. Diff.")
    NPO       L = (2/β) E_f[log(1 + (π_θ(y|x) / π_ref(y|x))^β)]
              = -(2/β) E_f[log σ(-β (log π_θ - log π_ref))]  (Zhang et al. 2024, Eq. 3; π_ref = the target)
    NPO+RT    L = NPO + λ NLL(r)
    SimNPO    L = -(2/β) E_f[log σ(-(β/|y|) log π_θ(y|x) - γ)] + λ NLL(r)
                                                             (Fan et al. 2024, Eq. 4: no reference model,
                                                              length-normalized reward, margin γ)
    RetainFT  L = NLL(r)                                     fine-tuning on the retain set only

As β -> 0, NPO's gradient tends to GA's on the summed log-likelihood (Zhang et al. Prop. 1); each
term's weight on an example, 2 π_θ^β / (π_θ^β + π_ref^β), vanishes as the example is forgotten:
what slows NPO's collapse.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from optrepro.errors import ConfigError
from optrepro.unlearn.lm import nll_loss, seq_logprob

METHODS = ("ga", "graddiff", "npo", "npo_rt", "simnpo", "retain_ft")
NEEDS_REF = ("npo", "npo_rt")
USES_RETAIN = ("graddiff", "npo_rt", "simnpo", "retain_ft")


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - logp_ref)).mean()


def simnpo_loss(logp: torch.Tensor, length: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(-(beta / length) * logp - gamma).mean()


def check_method(method: str, beta: float) -> None:
    if method not in METHODS:
        raise ConfigError(f"unlearning method '{method}' unknown; valid: {', '.join(METHODS)}")
    if beta <= 0:
        raise ConfigError(f"beta must be > 0, got {beta}")


def objective(method: str, model, fb, rb, ref_logp=None, beta: float = 0.1, gamma: float = 0.0,
              retain_weight: float = 1.0) -> torch.Tensor:
    """The loss to minimize for one step. fb / rb: lm.Batch; ref_logp: π_ref's summed log-probs of fb."""
    retain = retain_weight * nll_loss(model, rb) if method in USES_RETAIN else 0.0
    if method == "retain_ft":
        return retain
    if method in ("ga", "graddiff"):
        return -nll_loss(model, fb) + retain
    logp, n = seq_logprob(model, fb)
    if method in NEEDS_REF:
        if ref_logp is None:
            raise ConfigError(f"{method} needs the reference model's log-probabilities of the forget batch")
        return npo_loss(logp, ref_logp, beta) + retain
    return simnpo_loss(logp, n, beta, gamma) + retain
