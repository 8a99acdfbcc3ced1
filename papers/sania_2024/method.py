r"""SANIA (Abdukhakimov, Xiang, Kamzolov, Gower and Takáč 2023): a Polyak-type framework. Each step
solves

    min_w ||w - w_t||^2_{B_t}   subject to   f_i(w_t) + <g_t, w - w_t> = f_i^*

whose solution, for a diagonal B_t = D_t, is the preconditioned Polyak step

    w_{t+1} = w_t - (f_i(w_t) - f_i^*) / ||g_t||^2_{D_t^-1} * D_t^-1 g_t.

The paper's point is the choice of D_t: with AdaGrad's or Adam's second moment *without the square
root* ("AdaGrad-SQR", "Adam-SQR"),

    AdaGrad-SQR:  D_t = sum_{s<=t} g_s^2        Adam-SQR:  D_t = (EMA_beta of g^2) / (1 - beta^t)

rescaling the features x -> V x (V diagonal) maps the iterates to V^-1 w_t and leaves every loss
unchanged: g -> V g, D -> V^2 D, so D^-1 g -> V^-1 D^-1 g and ||g||^2_{D^-1} is unchanged (exactly for
eps = 0). With the square root (PSPS's Adam/AdaGrad), D^-1 g -> D^-1 g and the invariance is lost.

The step is common.optim.polyak.PreconditionedPolyak (shared with psps_2024); this module names
SANIA's diagonal members. Its Newton-type members (SANIA PCG, cubic Newton) are not implemented."""
from __future__ import annotations

from optrepro.optim.polyak import PreconditionedPolyak

PRECONDITIONERS = {"sania_adagrad_sqr": "adagrad_sqr", "sania_adam_sqr": "adam_sqr"}
"""SANIA's scale-invariant diagonal methods -> the shared optimizer's `precond`."""


def sania(params, method: str = "sania_adam_sqr", **kwargs) -> PreconditionedPolyak:
    """The optimizer for one of SANIA's diagonal methods (kwargs: beta, eps, f_star, max_step, ...)."""
    if method not in PRECONDITIONERS:
        raise ValueError(f"method must be one of {', '.join(PRECONDITIONERS)}, got {method!r}")
    return PreconditionedPolyak(params, precond=PRECONDITIONERS[method], **kwargs)
