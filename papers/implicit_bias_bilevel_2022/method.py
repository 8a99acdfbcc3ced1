r"""Implicit bias in overparameterized bilevel optimization (Vicol, Lorraine, Pedregosa, Duvenaud and
Grosse, ICML 2022): with an overparameterized inner problem, cold-start and warm-start bilevel
optimization converge to different solutions, and a warm-started inner solution can hold information
about the outer objective that the (low-dimensional) outer parameters do not.

Our instance, the smallest one that shows it (a dataset distillation of one point): the outer
parameter is a single angle x; the distilled example is the unit input u(x) = (cos x, sin x) with
label 1; the inner model is linear in R^2, so the inner problem has a line of minimizers:

    g(x, w) = 1/2 (u(x)' w - 1)^2                  (inner: every w with u'w = 1)
    f(x, w) = 1/2 mean_i (a_i' w - b_i)^2           (outer: real 2-D regression data, ||w_true|| = 3)

- cold start (inner gradient descent from w = 0 at every outer step, to convergence) returns the
  minimum-norm solution w_mn(x) = u(x): the reachable models are the unit circle, and the best
  cold-start value is min over x of f(u(x)) (`best_min_norm`, by a dense grid of angles);
- warm start carries w across outer steps; inner steps move w only along u(x) (the component
  orthogonal to u(x) is what earlier steps left), so w can leave the circle and fit the real data
  with any norm; retraining from scratch on the final x gives u(x) again.

Hypergradients are unrolled through the K inner steps (common.bilevel.unrolled), Adam on x."""
from __future__ import annotations

import math

import torch

from optrepro.bilevel import Bilevel, inner_gd, unrolled

MODES = ("cold", "warm")


class AngleDistill(Bilevel):
    def __init__(self, n_real: int = 200, norm: float = 3.0, noise: float = 0.1, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = torch.randn(n_real, 2, generator=g, dtype=torch.float64)
        th = 2 * math.pi * float(torch.rand(1, generator=g, dtype=torch.float64))
        self.w_true = norm * torch.tensor([math.cos(th), math.sin(th)], dtype=torch.float64)
        self.b = self.A @ self.w_true + noise * torch.randn(n_real, generator=g, dtype=torch.float64)

    @staticmethod
    def u(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.cos(x[0]), torch.sin(x[0])])

    def g(self, x, w):
        return 0.5 * (self.u(x) @ w - 1.0) ** 2

    def f(self, x, w):
        return 0.5 * (self.A @ w - self.b).pow(2).mean()

    def min_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The minimum-norm inner solution: u(x) (u has unit norm and label 1)."""
        return self.u(x)

    def best_min_norm(self, points: int = 100_000) -> float:
        """min over x of f(u(x)): the best any cold start (any minimum-norm solution) can do."""
        th = torch.linspace(0, 2 * math.pi, points, dtype=torch.float64)
        U = torch.stack([torch.cos(th), torch.sin(th)], 1)
        return float(0.5 * (U @ self.A.T - self.b).pow(2).mean(1).min())


def init_state(outer_lr: float, x0: float = 0.0) -> dict:
    """The outer parameter, the inner iterate and the outer optimizer (what a checkpoint must hold)."""
    x = torch.full((1,), float(x0), dtype=torch.float64, requires_grad=True)
    return {"x": x, "w": torch.zeros(2, dtype=torch.float64), "opt": torch.optim.Adam([x], lr=outer_lr)}


def run_blo(prob: AngleDistill, mode: str, inner_steps: int, inner_lr: float, state: dict, steps) -> tuple:
    """Adam on x (state from `init_state`) with the unrolled hypergradient, one outer step per item of
    `steps` (a range, or a checkpointed ctx.steps); cold: the inner problem from w = 0 at every outer
    step; warm: from the previous inner iterate. Returns (x, w): for cold start, w solves the inner
    problem of the final x from 0."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    x, w, opt = state["x"], state["w"], state["opt"]
    for _ in steps:
        hg = unrolled(prob, x.detach(), torch.zeros_like(w) if mode == "cold" else w, inner_steps, inner_lr)
        w.copy_(hg.y)
        opt.zero_grad(set_to_none=True)
        x.grad = hg.grad
        opt.step()
    if mode == "cold":
        return x.detach().clone(), inner_gd(prob, x.detach(), torch.zeros_like(w), inner_steps, inner_lr)
    return x.detach().clone(), w.clone()
