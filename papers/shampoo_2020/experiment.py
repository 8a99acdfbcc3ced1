"""One row, one seed: the shared classification task (common.tasks.classify) with Shampoo
(method.py; optim.name 'shampoo', its extra arguments in optim.kwargs: graft, block_size,
precondition_every, start_preconditioning_step, root, ...) or any registered optimizer. Shampoo is
outside the optimizer registry like the other second-order methods (it is listed under
`second_order:` for `repro bench second-order`, which measures its time and memory per step). The
'graft only' row is Shampoo whose preconditioning never starts: Adagrad with momentum, the
direction Shampoo's own magnitude comes from."""
from __future__ import annotations

from optrepro.optim import preflight_outside_registry
from optrepro.tasks import classify

from . import method

Config = classify.ClassifyConfig
OURS = "shampoo"


def _make(cfg):
    oc = cfg.optim

    def make(params, model=None):
        return method.make(params, lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay, **oc.kwargs)
    return make


def preflight(cfg) -> None:
    if cfg.optim.name != OURS:
        return classify.preflight(cfg)
    preflight_outside_registry(cfg, classify.preflight, _make(cfg))


def run(cfg, ctx) -> dict:
    return classify.run(cfg, ctx, make_optimizer=_make(cfg) if cfg.optim.name == OURS else None)
