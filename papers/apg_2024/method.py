r"""Adaptive projected guidance (Sadat et al. 2024), on the denoised prediction D:

    ΔD_t = D_c - D_u;  with momentum ΔD_t ← ΔD_t + β ΔD̄_{t+1} (β < 0);  ΔD_t ← ΔD_t · min(1, r / ||ΔD_t||);
    ΔD_∥ = (<ΔD_t, D_c> / ||D_c||²) D_c,  ΔD_⊥ = ΔD_t - ΔD_∥;   D̃ = D_c + (w - 1)(ΔD_⊥ + η ΔD_∥).

The rule is common.diffusion.guidance.APG; tests/reference/test_diffusion.py checks it against diffusers'
AdaptiveProjectedGuidance (original formulation) over three steps with momentum and rescaling, and
documents that diffusers' default formulation differs from the paper's by exactly ΔD_∥."""
from optrepro.diffusion.guidance import APG as Method  # noqa: F401
