r"""PSPS: SGD with a preconditioned Polyak step size (Abdukhakimov, Xiang, Kamzolov and Takáč 2024).

SPS (Loizou et al. 2021) steps to the zero of the minibatch loss's linearisation,
gamma_t = (f_i(w_t) - f_i^*) / ||g_t||^2, w_{t+1} = w_t - gamma_t g_t. PSPS measures that step in the
norm of a diagonal preconditioner D_t (projection in ||.||_{D_t}):

    gamma_t = (f_i(w_t) - f_i^*) / ||g_t||^2_{D_t^-1},    w_{t+1} = w_t - gamma_t D_t^-1 g_t

with D_t from Hutchinson's estimate of the Hessian diagonal (an exponential average of z * (H z) for
Rademacher z, floored at alpha in absolute value), or Adam's or AdaGrad's square-root second moment.
Still no learning rate: that is the claim.

The step is common.optim.polyak.PreconditionedPolyak (shared with the SANIA package, which adds the
square-root-free preconditioners); this module names the paper's members of that family."""
from __future__ import annotations

from optrepro.optim.polyak import PreconditionedPolyak

PRECONDITIONERS = {"sps": "identity", "psps_hutchinson": "hutchinson", "psps_adam": "adam",
                   "psps_adagrad": "adagrad"}
"""The paper's methods -> the shared optimizer's `precond`."""


def psps(params, method: str = "psps_hutchinson", **kwargs) -> PreconditionedPolyak:
    """The optimizer for one of the paper's methods (kwargs: beta, alpha, eps, f_star, max_step, ...)."""
    if method not in PRECONDITIONERS:
        raise ValueError(f"method must be one of {', '.join(PRECONDITIONERS)}, got {method!r}")
    return PreconditionedPolyak(params, precond=PRECONDITIONERS[method], **kwargs)
