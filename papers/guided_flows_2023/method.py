"""Guided flows (Zheng et al. 2023): classifier-free guidance on a conditional flow-matching velocity,
ṽ = (1 - w) v(x, ∅) + w v(x, c) = v_u + γ (v_c - v_u). Training is flow matching on the rectified
path x_t = (1 - t) x0 + t ε with target ε - x0 and label dropout (common.diffusion.models with
process: flow, param: velocity); sampling integrates the guided velocity (common.diffusion.samplers).
The rule is common.diffusion.guidance.CFG applied to the velocity."""
from optrepro.diffusion.guidance import CFG as Method  # noqa: F401
