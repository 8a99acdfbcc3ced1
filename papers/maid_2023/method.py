"""MAID, the Method of Adaptive Inexact Descent (Salehi, Mukherjee, Roberts & Ehrhardt 2023).

    repeat: solve the lower level to accuracy eps and g_yy q = f_y to residual delta;
            h = f_x - g_xy q, with an a posteriori bound omega(eps, delta) >= ||h - dF/dx||;
            shrink eps, delta until omega <= (1 - eta) ||h||            (-h certainly descends)
            backtrack on the step until  upper bound of F(x - a h) <= lower bound of F(x) - eta a ||h||^2;
            success: loosen eps, delta by nu, next trial step a / rho;  failure: tighten by tau.

The pieces live in common.bilevel.inexact (the bound, the accelerated inner solver, MAID and the
fixed-step baseline with a priori accuracies), where other inexact-bilevel papers can use them;
this module names them.
"""
from optrepro.bilevel.inexact import error_bound, inexact_gd, inexact_hypergrad, maid  # noqa: F401
