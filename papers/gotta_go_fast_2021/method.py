"""The adaptive-step reverse-SDE solver of Jolicoeur-Martineau et al. (2021) lives in
common.diffusion.sde beside Euler-Maruyama (for later SDE-sampler papers); this module names them."""
from optrepro.diffusion.sde import adaptive_sample, em_sample

__all__ = ["adaptive_sample", "em_sample"]
