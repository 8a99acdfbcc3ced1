"""ScaleBiO (Pan et al. 2024): data reweighting by a fully first-order penalty minimax,

    min_{lam, w} max_u   f(w) + alpha (g(lam, w) - g(lam, u)),   g = sum_k softmax(lam)_k l_k

with one Adam step on u, w and lam per minibatch and alpha growing each outer iteration. The loop,
the per-source minibatch oracles and the weighted loss live in common.bilevel.reweight (any
reweighting paper can use them); this module names them.
"""
from optrepro.bilevel.reweight import SourceSampler, penalty_minimax, source_losses, weighted  # noqa: F401
