"""D-ODE solvers (Kim et al. 2023): DDIM plus λ_i α(t_{i+1}) (x̂0_i - x̂0_{i-1}) per step, the λ_i distilled
by least squares from a DDIM teacher with 10x the steps on one batch (common.diffusion.dode)."""
from optrepro.diffusion.dode import fit_lambdas, refine  # noqa: F401
from optrepro.diffusion.dode import dode_sample as Method  # noqa: F401
