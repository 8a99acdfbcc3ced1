r"""Generalized Polyak step sizes for momentum methods (Wang, Johansson and Zhang, ICML 2023).

Polyak's step for gradient descent minimizes, over eta, the bound that convexity gives on the next
distance to a minimizer x*: ||x - eta g - x*||^2 <= ||x - x*||^2 - 2 eta (f(x) - f*) + eta^2 ||g||^2,
so eta = (f(x) - f*) / ||g||^2. The paper applies the same principle to momentum methods; the
stochastic rule it runs on the large-scale tasks (ALR-SMAG, the moving-average-gradient form) is

    d_t   = beta d_{t-1} + g_t          (g_t the minibatch gradient; d_0 = 0)
    eta_t = min(eta_max, (f_i(w_t) - f_i^*) / (c ||d_t||^2))
    w_{t+1} = w_t - eta_t d_t

and for the heavy-ball form x_{t+1} = x_t - eta_t g_t + beta (x_t - x_{t-1}) the same bound,
||x_{t+1} - x*||^2 <= ||x_t - x* + beta m_t||^2 - 2 eta (f(x_t) - f* + beta <g_t, m_t>) + eta^2 ||g_t||^2
with m_t = x_t - x_{t-1}, is minimized by

    eta_t = max(0, f(x_t) - f* + beta <g_t, m_t>) / ||g_t||^2                       (our "ALR-HB")

What differs from SPS: with beta = 0 both are SPS_max; with beta > 0 the step is measured along the
momentum direction (mag) or corrected by how far the momentum already moves toward the minimizer
(hb). Where this comes from: the mag rule is the one the third-party implementations we read agree on
(the paper's own text was not available in full); the hb rule is derived above from the principle
the abstract states and is not checked against the paper's equation (paper.yaml says so).

The optimizer is common.optim.polyak.PolyakMomentum (closure-based, like the other Polyak steps)."""
from __future__ import annotations

from optrepro.optim.polyak import MOMENTUM_FORMS, PolyakMomentum  # noqa: F401


def alr(params, beta: float = 0.9, form: str = "mag", **kwargs) -> PolyakMomentum:
    """ALR-SMAG (form='mag') or the heavy-ball step (form='hb'); kwargs: c, max_step (eta_max), f_star, lr."""
    return PolyakMomentum(params, beta=beta, form=form, **kwargs)
