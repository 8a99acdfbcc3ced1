"""Scaling-law toolkit: laws, fits (Huber/L-BFGS from a grid, power laws, IsoFLOP minima,
bootstrap), FLOP counting, and validated loading of run tables."""
from optrepro.scaling.fit import (ChinchillaFit, FitError, bootstrap, chinchilla_objective, compute_optimal_exponent,  # noqa: F401
                                compute_optimal_exponent_interp, isoflop_minima_interp, seed_noise_std,
                                fit_chinchilla, fit_power_law, huber, isoflop_minima)
from optrepro.scaling.io import load_runs  # noqa: F401
from optrepro.scaling.laws import chinchilla, chinchilla_frontier, flops_per_token, kaplan_nd, power_law  # noqa: F401
from optrepro.scaling.sweep import (interpolate_loss, isoflop_from_curves, isoflop_points, load_sweep,  # noqa: F401
                                    tuned_results)
