"""GaLore (Zhao et al. 2024): Adam whose moments live in a low-rank projection of each weight
matrix's gradient,

    R_t = P_t^T G_t  (or G_t Q_t),   P_t = top-r singular vectors of G_t, recomputed every T steps
    W  <- W - lr * alpha * P_t Adam(R_t)

The projector and the optimizer live in common.lowrank (FRUGAL and other subspace methods reuse the
projectors; FRUGAL compares against this GaLore as a row); this module names them.
"""
from optrepro.lowrank import GaLoreAdamW, basis, down, up  # noqa: F401
