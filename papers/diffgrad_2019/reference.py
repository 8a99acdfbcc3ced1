"""diffGrad's Algorithm 1 written out literally, one parameter tensor at a time, in float64, with no
in-place tricks: the reference the fused `method.DiffGrad` is tested against every step."""
from __future__ import annotations

import torch


class DiffGradReference:
    def __init__(self, theta: torch.Tensor, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.theta = theta.detach().double().clone()
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.m = torch.zeros_like(self.theta)
        self.v = torch.zeros_like(self.theta)
        self.g_prev = torch.zeros_like(self.theta)
        self.t = 0

    def step(self, grad: torch.Tensor) -> torch.Tensor:
        g = grad.double() + self.wd * self.theta
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g ** 2
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        xi = 1 / (1 + torch.exp(-torch.abs(self.g_prev - g)))
        self.theta = self.theta - self.lr * xi * m_hat / (torch.sqrt(v_hat) + self.eps)
        self.g_prev = g
        return self.theta
