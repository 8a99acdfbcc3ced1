"""One row, one seed: the shared classification task (common.tasks.classify) with AdaHessian
(method.py; optim.name 'adahessian', its extra arguments in optim.kwargs: hessian_power,
update_every, spatial_average) or any registered optimizer. AdaHessian is not in the optimizer
registry because its step differentiates the gradient (the trainer backpropagates with
create_graph=True for it), which the registry's closure-free contract does not provide. Time and
memory per step are measured apart from the table, by `repro bench second-order` (a run's results
must not depend on the machine's load)."""
from __future__ import annotations

from optrepro.optim import preflight_outside_registry
from optrepro.tasks import classify

from . import method

Config = classify.ClassifyConfig
OURS = "adahessian"


def _make(cfg):
    oc = cfg.optim

    def make(params, model=None):
        return method.AdaHessian(params, lr=oc.lr, betas=tuple(oc.betas), eps=oc.eps, weight_decay=oc.weight_decay,
                                 seed=cfg.seed, **oc.kwargs)
    return make


def preflight(cfg) -> None:
    if cfg.optim.name != OURS:
        return classify.preflight(cfg)
    preflight_outside_registry(cfg, classify.preflight, _make(cfg))


def run(cfg, ctx) -> dict:
    return classify.run(cfg, ctx, make_optimizer=_make(cfg) if cfg.optim.name == OURS else None)
