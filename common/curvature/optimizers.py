"""The Shampoo-family optimizers of common.curvature by name, built from a task's optim config, for
the papers that run them as rows (shampoo_2020, shampoo_perspective_2024, adafisher_2024): 'shampoo'
(common.curvature.shampoo) and 'soap' (common.curvature.soap). optim.lr, optim.betas and
optim.weight_decay (and optim.eps for SOAP) map to the constructor; optim.kwargs gives the rest."""
from __future__ import annotations

from .shampoo import Shampoo
from .soap import SOAP

SHARED = {"shampoo": Shampoo, "soap": SOAP}


def build(oc, params):
    """The optimizer `oc.name` names (one of SHARED) on `params`."""
    cls = SHARED[oc.name]
    kw = dict(lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay)
    if cls is SOAP:
        kw["eps"] = oc.eps
    return cls(params, **kw, **oc.kwargs)


def maker(oc):
    """`make(params, model=None)` building `oc.name`, as common.tasks.classify.run and
    common.optim.preflight_outside_registry call it."""
    return lambda params, model=None: build(oc, params)
