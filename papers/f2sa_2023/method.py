"""F2SA (Kwon et al. 2023): no second derivatives. With z ~ argmin_z g(x, z) and
y ~ argmin_y f(x, y) / lam + g(x, y) (T gradient steps each), the hypergradient estimate is

    f_x(x, y) + lam (g_x(x, y) - g_x(x, z)),      lam <- min(lam + lam_step, lam_max)

which tends to dF/dx as lam grows (bias O(1/lam)). The loop is common.bilevel's `f2sa` (the
penalty gradient is shared with V-PBGD); this module names it.
"""
from optrepro.bilevel import penalty_grads  # noqa: F401
from optrepro.bilevel.algorithms import f2sa  # noqa: F401
