"""One row, one seed: the shared classification task (common.tasks.classify) with Shampoo
(common.curvature.shampoo, see method.py; optim.name 'shampoo', its extra arguments in optim.kwargs: graft, block_size,
precondition_every, start_preconditioning_step, root, ...) or any registered optimizer. Shampoo is
outside the optimizer registry like the other second-order methods (it is listed under
`second_order:` for `repro bench second-order`, which measures its time and memory per step). The
'graft only' row is Shampoo whose preconditioning never starts: Adagrad with momentum, the
direction Shampoo's own magnitude comes from."""
from __future__ import annotations

from optrepro.curvature import optimizers as shared
from optrepro.optim import preflight_outside_registry
from optrepro.tasks import classify

Config = classify.ClassifyConfig
OURS = "shampoo"


def preflight(cfg) -> None:
    if cfg.optim.name != OURS:
        return classify.preflight(cfg)
    preflight_outside_registry(cfg, classify.preflight, shared.maker(cfg.optim))


def run(cfg, ctx) -> dict:
    return classify.run(cfg, ctx, make_optimizer=shared.maker(cfg.optim) if cfg.optim.name == OURS else None)
