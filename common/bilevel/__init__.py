"""Bilevel optimization toolkit: hypergradients (unrolled, implicit with CG/Neumann, first-order
penalty), a custom_root decorator, benchmark problems and the algorithms papers compare."""
from optrepro.bilevel.algorithms import ALGORITHMS, run  # noqa: F401
from optrepro.bilevel.core import (Bilevel, HyperGrad, implicit, inner_gd, penalty_grads,  # noqa: F401
                                 saved_bytes, unrolled)
from optrepro.bilevel.implicit_diff import custom_root  # noqa: F401
from optrepro.bilevel.linsolve import BilevelError, IndefiniteHessian, NotConverged, cg, neumann  # noqa: F401
