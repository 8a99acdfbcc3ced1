"""One row, one seed: the shared classification task (common.tasks.classify) with AdaFisher
(method.py; optim.name 'adafisher': optim.lr, optim.betas[0] as its beta, optim.weight_decay, and in
optim.kwargs damping, gamma, refresh_every), Shampoo (common.curvature.shampoo; optim.name
'shampoo', its arguments in optim.kwargs) or any registered optimizer. AdaFisher is built on the
model (it hooks the Linear and Conv2d layers to read their inputs and output gradients), so it is
outside the optimizer registry; time and memory per step: `repro bench second-order`."""
from __future__ import annotations

from optrepro.curvature import optimizers as shared
from optrepro.optim import preflight_outside_registry
from optrepro.tasks import classify

from . import method

Config = classify.ClassifyConfig
OURS = ("adafisher", "shampoo")


def _make(cfg):
    oc = cfg.optim

    def make(params, model=None):
        if oc.name in shared.SHARED:
            return shared.build(oc, params)
        return method.AdaFisher(model, lr=oc.lr, beta=oc.betas[0], weight_decay=oc.weight_decay, **oc.kwargs)
    return make


def preflight(cfg) -> None:
    if cfg.optim.name not in OURS:
        return classify.preflight(cfg)
    preflight_outside_registry(cfg, classify.preflight, _make(cfg))


def run(cfg, ctx) -> dict:
    return classify.run(cfg, ctx, make_optimizer=_make(cfg) if cfg.optim.name in OURS else None)
