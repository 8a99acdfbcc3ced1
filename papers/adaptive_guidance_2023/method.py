"""Adaptive Guidance (Castillo et al. 2023): run CFG, ε̃ = ε_u + γ (ε_c - ε_u), while the conditional
and unconditional predictions disagree; once their cosine similarity exceeds γ̄, the guided step is
the conditional one alone and the unconditional evaluation is skipped for the remaining steps (per
sample). The rule is common.diffusion.guidance.AdaptiveGuidance (threshold 1 is exactly CFG and
threshold -1 is one CFG step then conditional sampling: both tested, with the evaluation count)."""
from optrepro.diffusion.guidance import AdaptiveGuidance as Method  # noqa: F401
