"""Implicit differentiation (Blondel et al. 2022): given an optimality condition F(y, theta) = 0
that the solver's output satisfies, the Jacobian of y*(theta) is  -[dF/dy]^{-1} dF/dtheta
(implicit function theorem), so a vector-Jacobian product needs one linear solve with
[dF/dy]^T and one VJP of F; the solver itself is never differentiated.

The decorator lives in common.bilevel (every bilevel paper uses it); this module names it.

    @custom_root(F, solve="cg")
    def solver(y0, theta): ...
"""
from optrepro.bilevel import custom_root  # noqa: F401
from optrepro.bilevel.linsolve import cg, neumann  # noqa: F401
