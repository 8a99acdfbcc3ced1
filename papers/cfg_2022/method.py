"""Classifier-free guidance (Ho & Salimans 2022): train one network on (x, c) and, with probability
p_uncond, on (x, ∅); sample with ε̃ = (1 + w) ε(x, c) - w ε(x, ∅) = ε_u + γ (ε_c - ε_u) with γ = 1 + w.

The rule is common.diffusion.guidance.CFG (every guidance paper uses it as the baseline; tested against
diffusers' ClassifierFreeGuidance), and label dropout is in common.diffusion.models.train."""
from optrepro.diffusion.guidance import CFG as Method  # noqa: F401
