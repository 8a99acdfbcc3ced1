"""Sparse MeZO (Liu et al. 2024): MeZO restricted to the small-magnitude weights. Per weight matrix a
threshold τ (a quantile of |w| at the start); the mask m = (|w| <= τ) is re-evaluated from the current
weights every time the direction is drawn, so no mask is stored and memory stays at inference level:

    g = [L(θ + ε m ⊙ z) - L(θ - ε m ⊙ z)] / (2ε);    θ ← θ - η g (m ⊙ z)

common.zo.ZOOptimizer(method='zo_sgd', masks=magnitude_masks(params, density)); biases and norm gains
stay dense."""
from optrepro.zo.masks import magnitude_masks  # noqa: F401
from optrepro.zo.optim import ZOOptimizer as Method  # noqa: F401
