"""Schedule-free SGD/AdamW written literally in the paper's three sequences (x, y, z), float64,
one tensor: the reference for the two-buffer form in method.py and for the authors' package."""
from __future__ import annotations

import torch


class ScheduleFreeReference:
    def __init__(self, theta: torch.Tensor, lr: float, beta: float, weight_decay: float = 0.0, adam: bool = False,
                 beta2: float = 0.999, eps: float = 1e-8, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0):
        self.x = theta.detach().double().clone()
        self.z = self.x.clone()
        self.v = torch.zeros_like(self.x)
        self.lr, self.beta, self.wd, self.adam, self.beta2, self.eps = lr, beta, weight_decay, adam, beta2, eps
        self.warmup, self.r, self.power = warmup_steps, r, weight_lr_power
        self.t, self.weight_sum, self.lr_max = 0, 0.0, 0.0

    @property
    def y(self) -> torch.Tensor:
        return (1 - self.beta) * self.z + self.beta * self.x

    def step(self, grad: torch.Tensor) -> None:
        """grad: the gradient at the current y."""
        self.t += 1
        g, y = grad.double(), self.y
        gamma = self.lr * (min(1.0, self.t / self.warmup) if self.warmup else 1.0)
        if self.adam:
            self.v = self.beta2 * self.v + (1 - self.beta2) * g ** 2
            d = g / (torch.sqrt(self.v / (1 - self.beta2 ** self.t)) + self.eps)
        else:
            d = g
        self.z = self.z - gamma * (d + self.wd * y)
        self.lr_max = max(self.lr_max, gamma)
        w = self.t ** self.r * self.lr_max ** self.power
        self.weight_sum += w
        c = w / self.weight_sum
        self.x = (1 - c) * self.x + c * self.z
