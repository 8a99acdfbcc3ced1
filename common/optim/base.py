"""The loop every elementwise optimizer's step() shares: evaluate the closure, visit each
parameter that has a gradient together with its group and state."""
from __future__ import annotations

from typing import Callable, Iterator

import torch


def eval_closure(closure: Callable | None):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def params_with_grad(opt: torch.optim.Optimizer) -> Iterator[tuple[dict, torch.Tensor, dict]]:
    """(group, param, state) for every parameter with a dense gradient."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(opt).__name__} does not support sparse gradients")
            yield group, p, opt.state[p]
