"""Unconditional Priors Matter! (Phunyaphibarn, Lee, Kim and Sung 2025): CFG with the unconditional
noise prediction of another model,

    ε̃(x, c) = ε_prior(x, ∅) + γ (ε_ft(x, c) - ε_prior(x, ∅)),

where ε_ft is the fine-tuned conditional model and ε_prior the base model it was fine-tuned from (or
any other diffusion model on the same process). The swap is a model, not a rule
(common.diffusion.models.UncondSwap): every guidance rule of common.diffusion.guidance then uses the
prior's unconditional branch, and the sampler counts the prior's evaluations as the unconditional
branch's."""
from optrepro.diffusion.models import UncondSwap as Method  # noqa: F401
