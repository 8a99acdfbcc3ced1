"""One row, one seed: the shared character-level LM task (common.tasks.charlm, a tiny GPT-2 on
pydoc text) with Sophia-G (method.py; optim.name 'sophiag', rho and hessian_every in optim.kwargs,
its batch size B = tokens per step set by the task) or any registered optimizer (AdamW).

Sophia-G is not in the optimizer registry: it needs the task to hand it a sampled-label loss every k
steps (common.train's `curvature_loss`), which the registry's generic trainers (the AlgoPerf ranking)
do not give. Time and memory per step: `repro bench second-order`."""
from __future__ import annotations

from optrepro.optim import preflight_outside_registry
from optrepro.tasks import charlm

from . import method

Config = charlm.CharLMConfig
OURS = "sophiag"


def _make(cfg):
    oc = cfg.optim

    def make(params, tokens_per_step: int = 1, model=None):
        return method.SophiaG(params, lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay,
                              bs=tokens_per_step, **oc.kwargs)
    return make


def preflight(cfg) -> None:
    if cfg.optim.name != OURS:
        return charlm.preflight(cfg)
    preflight_outside_registry(cfg, charlm.preflight, _make(cfg))


def run(cfg, ctx) -> dict:
    return charlm.run(cfg, ctx, make_optimizer=_make(cfg) if cfg.optim.name == OURS else None)
