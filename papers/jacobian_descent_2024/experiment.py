"""One row, one seed: instance-wise risk minimization (IWRM, the paper's section 5) on a subset of
sklearn digits. Every training example's loss is its own objective: each step takes a batch of
`batch_size` examples, forms the per-example Jacobian (batch_size x parameters, with torch.func),
reduces it with the row's aggregator (method.py) and steps x <- x - lr A(J). The `mean` aggregator
is plain SGD on the average loss, the baseline IWRM is compared with.

Metrics at the end of training: `train_loss` (mean cross-entropy over the whole training subset,
the quantity the paper plots), `train_acc` and `test_acc` (%). The training loss is logged every
epoch for the figure."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call, grad, vmap

from optrepro.config import BaseConfig
from optrepro.data.core import digits
from optrepro.errors import ConfigError, Diverged
from optrepro.models.vision import MLP

from . import method


@dataclass
class IWRMConfig(BaseConfig):
    aggregator: str = "upgrad"
    """mean (SGD on the average loss), upgrad, mgda or pcgrad."""
    lr: float = 0.1
    n_train: int = 500
    """Training examples taken from the digits training split (1,348 examples)."""
    batch_size: int = 32
    epochs: int = 20
    width: int = 32
    depth: int = 1


def preflight(cfg: IWRMConfig) -> None:
    if cfg.aggregator not in method.AGGREGATORS:
        raise ConfigError(f"aggregator must be one of {', '.join(method.AGGREGATORS)}, got {cfg.aggregator!r}")
    if not cfg.lr > 0:
        raise ConfigError(f"lr must be > 0, got {cfg.lr}")
    if not 1 <= cfg.n_train <= 1348:
        raise ConfigError(f"n_train must be in [1, 1348] (the digits training split), got {cfg.n_train}")
    if cfg.batch_size < 1 or cfg.epochs < 0 or cfg.width < 1 or cfg.depth < 0:
        raise ConfigError(f"batch_size and width must be >= 1, epochs and depth >= 0, got batch_size={cfg.batch_size} "
                          f"epochs={cfg.epochs} width={cfg.width} depth={cfg.depth}")


def per_example_jacobian(model: torch.nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(batch, n_params): row i is the gradient of example i's cross-entropy."""
    def loss_one(p, xi, yi):
        out = functional_call(model, p, (xi[None],))
        return torch.nn.functional.cross_entropy(out, yi[None])
    grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g.reshape(len(x), -1) for g in grads.values()], dim=1)


@torch.no_grad()
def _evaluate(model, x, y):
    out = model(x)
    return float(torch.nn.functional.cross_entropy(out, y)), 100.0 * float((out.argmax(1) == y).double().mean())


def run(cfg: IWRMConfig, ctx) -> dict:
    ctx.no_checkpoint("a 2,400-parameter MLP trained for seconds")
    split = digits(seed=cfg.seed)
    x, y = split.x_train[:cfg.n_train].flatten(1), split.y_train[:cfg.n_train]
    torch.manual_seed(cfg.seed)
    model = MLP(x.shape[1], split.num_classes, width=cfg.width, depth=cfg.depth)
    params = {k: v.detach() for k, v in model.named_parameters()}  # views: they follow the in-place steps
    g = torch.Generator().manual_seed(cfg.seed * 7919 + 5)
    agg = method.PCGrad(generator=g) if cfg.aggregator == "pcgrad" else method.make_aggregator(cfg.aggregator)
    loss0, _ = _evaluate(model, x, y)
    ctx.log(0, train_loss=loss0)
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(x), generator=g)
        for k in range(0, len(order), cfg.batch_size):
            idx = order[k:k + cfg.batch_size]
            J = per_example_jacobian(model, params, x[idx], y[idx])
            update = agg(J)
            if not bool(torch.isfinite(update).all()):
                raise Diverged(step, "update", float(update.abs().max()))
            step += 1
            with torch.no_grad():  # J's columns follow named_parameters(): the update splits the same way
                offset = 0
                for p in model.parameters():
                    p.sub_(cfg.lr * update[offset:offset + p.numel()].view_as(p))
                    offset += p.numel()
        loss, _ = _evaluate(model, x, y)
        ctx.log(epoch, train_loss=loss)
    train_loss, train_acc = _evaluate(model, x, y)
    _, test_acc = _evaluate(model, split.x_test.flatten(1), split.y_test)
    return {"train_loss": train_loss, "train_acc": train_acc, "test_acc": test_acc}
