"""CFG-Zero* (Fan et al. 2025) for flow matching: with v_c, v_u the conditional and unconditional velocities,

    s* = <v_c, v_u> / ||v_u||²  (per sample),   ṽ = s* v_u + w (v_c - s* v_u),

and the first K steps of the ODE output zero velocity ("zero-init"; no network evaluation). The rule
is common.diffusion.guidance.CFGZeroStar, checked against diffusers' ClassifierFreeZeroStarGuidance at
a zeroed and at guided steps."""
from optrepro.diffusion.guidance import CFGZeroStar as Method  # noqa: F401
