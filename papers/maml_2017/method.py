"""MAML (Finn, Abbeel and Levine, ICML 2017): learn an initialization theta such that a few gradient
steps on a new task's K examples give a good model for it,

    min_theta  E_task  L_query( theta - alpha grad L_support(theta) )       (one inner step; more: repeat)

with the meta-gradient taken through the inner step (second order) or, in first-order MAML, with the
inner gradient held constant. The pieces are common.bilevel.meta (shared with later meta-learning
papers); this module names the three training objectives the sinusoid table compares."""
from __future__ import annotations

import torch
from torch import nn

from optrepro.bilevel import meta

METHODS = ("maml", "fomaml", "pretrained")


def objective(name: str, model: nn.Module, support: tuple, query: tuple, inner_steps: int,
              inner_lr: float) -> torch.Tensor:
    """The loss whose gradient trains `model` on one meta-batch (support/query: (x, y), task-leading)."""
    if name in ("maml", "fomaml"):
        return meta.meta_loss(model, meta.mse_per_task, support, query, inner_steps, inner_lr,
                              first_order=name == "fomaml")
    if name == "pretrained":  # the paper's baseline: regress every sampled point, no adaptation
        x = torch.cat([support[0], query[0]], 1)
        y = torch.cat([support[1], query[1]], 1)
        return meta.mse_per_task(model(x), y).mean()
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
