"""IFT hyperparameter optimization (Lorraine, Vicol & Duvenaud 2020), Algorithm 1:

    repeat: T steps of SGD on the training loss g(x, y);
            v  = alpha * sum_{j=0}^{K} (I - alpha g_yy)^j f_y        (Neumann series, K terms)
            dF/dx ~= f_x - g_xy v;  x <- x - lr_x dF/dx

The Neumann solver and the AID loop live in common.bilevel (other papers compare against them);
this module names them.
"""
from optrepro.bilevel import implicit, neumann  # noqa: F401
from optrepro.bilevel.algorithms import stocbio as ift_neumann  # noqa: F401  (Algorithm 1)
