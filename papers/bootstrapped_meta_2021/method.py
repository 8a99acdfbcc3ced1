"""Bootstrapped meta-gradients (Flennerhag et al., BMG):

    w_K(eta)  = K steps of the update rule from w (differentiable in eta)
    w^        = stopgrad( w_{K+L} - beta grad l_meta(w_{K+L}) )     (L more steps, then one meta step)
    eta      <- eta - meta_lr d/d eta mu(w^, w_K(eta))                (mu: L2 on parameters, or KL on outputs)

against the standard meta-gradient d/d eta l_meta(w_K(eta)). The pieces live in
common.bilevel.bootstrap (other meta-learning papers can bootstrap targets too); this module names them.
"""
from optrepro.bilevel.bootstrap import matching, meta_gradient, target, unroll  # noqa: F401
