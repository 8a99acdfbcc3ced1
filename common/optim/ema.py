"""Model EMA (an exponential moving average of a model's parameters) and the batch-size scaling rule
for it.

    ema = ModelEMA(model, momentum=0.999)
    ... opt.step(); ema.update(model)
    ema.module  # the averaged copy, evaluated like any model

Update (per optimizer step): theta_ema <- rho * theta_ema + (1 - rho) * theta, written as
theta_ema.lerp_(theta, 1 - rho), the same kernel as torch.optim.swa_utils.get_ema_multi_avg_fn (the
reference test compares the two). Buffers (batch-norm statistics) are copied, not averaged.

EMA scaling rule (Busbridge et al. 2023, "How to Scale Your EMA"): when the batch size is scaled by
kappa, scale the momentum to rho ** kappa, alongside the optimizer's own rule (SGD: lr * kappa, steps
/ kappa). kappa updates towards a fixed target with rho equal one update with rho ** kappa, so the EMA
keeps the same horizon measured in samples."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


def scaled_momentum(rho: float, kappa: float) -> float:
    """The EMA momentum for a batch kappa times larger: rho ** kappa."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1], got {rho}")
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    return float(rho) ** float(kappa)


@dataclass(frozen=True)
class SGDScaling:
    """SGD's hyper-parameters at batch `batch` x kappa under the linear scaling rule, with or without
    the EMA scaling rule."""
    batch: int
    lr: float
    steps: int
    momentum: float

    @staticmethod
    def of(batch: int, lr: float, steps: int, momentum: float, kappa: int, scale_ema: bool = True) -> "SGDScaling":
        if kappa < 1 or int(kappa) != kappa:
            raise ValueError(f"kappa must be a positive integer, got {kappa}")
        if steps % kappa:
            raise ValueError(f"steps ({steps}) must be a multiple of kappa ({kappa}): the same samples are seen")
        return SGDScaling(batch * kappa, lr * kappa, steps // kappa,
                          scaled_momentum(momentum, kappa) if scale_ema else momentum)


class ModelEMA:
    """A frozen copy of `model` whose floating-point parameters follow `model` with momentum `momentum`."""

    def __init__(self, model: nn.Module, momentum: float):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        w = 1.0 - self.momentum
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), w)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "momentum": torch.tensor(self.momentum, dtype=torch.float64),
                "updates": torch.tensor(self.updates)}

    def load_state_dict(self, sd: dict) -> None:
        self.module.load_state_dict(sd["module"])
        self.momentum = float(sd["momentum"])
        self.updates = int(sd["updates"])
