"""FRUGAL (Zmushko, Beznosikov, Takac and Horvath, ICML 2025): full-rank updates with gradient
splitting. Each matrix's gradient is split into a low-dimensional part stepped by a stateful
optimizer (AdamW, moments in the subspace) and the residual stepped by a state-free one (signSGD):

    W <- W - lr up(AdamW(down(G))) - lr sign(G - up(down(G))),

the subspace (SVD, random or column projector, common.lowrank) refreshed, and the moments reset,
every T steps. The optimizer lives in common.lowrank beside GaLore's, which is FRUGAL with the
state-free part switched off (and GaLore's scale alpha); this module names it."""
from optrepro.lowrank import FrugalAdamW  # noqa: F401
