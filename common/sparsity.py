"""Unstructured sparsity: masks, magnitude pruning and a masked MLP whose masks can be learned.

- `topk_mask(scores, density)`: 1 on the round(density * n) largest entries of one tensor, 0 elsewhere
  (ties broken by position, deterministic).
- `STETopK`: the same mask in the forward pass, the identity in the backward pass (straight-through),
  so scores can be trained through a binary mask (Hydra, BiP).
- `magnitude_masks(weights, density, current)`: layerwise magnitude pruning of the weights still
  alive under `current` masks (one-shot, or one round of iterative magnitude pruning).
- `MaskedMLP`: Linear layers with per-weight masks (biases are never pruned) and per-weight scores.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def topk_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    n = scores.numel()
    keep = max(1, int(round(density * n)))
    idx = torch.argsort(scores.flatten(), descending=True, stable=True)[:keep]
    out = torch.zeros(n, dtype=scores.dtype)
    out[idx] = 1
    return out.view_as(scores)


class STETopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, density):
        return topk_mask(scores.detach(), density)

    @staticmethod
    def backward(ctx, g):
        return g, None


def magnitude_masks(weights: list, density: float, current: list | None = None) -> list:
    """Per layer: keep the `density` fraction of the layer's weights (counted over all its entries)
    with the largest magnitude among those alive under `current` (dead weights never come back)."""
    out = []
    for i, w in enumerate(weights):
        alive = torch.ones_like(w) if current is None else current[i]
        score = w.detach().abs() * alive - (1 - alive)  # dead entries rank below every live one
        out.append(topk_mask(score, density))
    return out


def density_schedule(final_density: float, rounds: int) -> list:
    """Iterative pruning: densities d^(r/R), r = 1..R (the same fraction of the survivors each round)."""
    return [final_density ** (r / rounds) for r in range(1, rounds + 1)]


class MaskedMLP(nn.Module):
    """ReLU MLP (sizes[0] -> ... -> sizes[-1]) with a fixed-or-learned mask per weight matrix.
    `weights`/`biases` are the parameters; `scores` (one per weight matrix) rank weights for
    mask learning; `masks` (buffers) are the masks used when `forward(x)` is called without
    explicit masks."""

    def __init__(self, sizes: list):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes, sizes[1:]):
            lin = nn.Linear(a, b)
            self.weights.append(nn.Parameter(lin.weight.detach().clone()))
            self.biases.append(nn.Parameter(lin.bias.detach().clone()))
        self.scores = nn.ParameterList([nn.Parameter(w.detach().abs().clone()) for w in self.weights])
        for i, w in enumerate(self.weights):
            self.register_buffer(f"mask{i}", torch.ones_like(w))

    @property
    def masks(self) -> list:
        return [getattr(self, f"mask{i}") for i in range(len(self.weights))]

    def set_masks(self, masks: list) -> None:
        for i, m in enumerate(masks):
            getattr(self, f"mask{i}").copy_(m)

    def forward_with(self, x: torch.Tensor, effective: list) -> torch.Tensor:
        """The network with effective weights z_l (already masked)."""
        for i, (z, b) in enumerate(zip(effective, self.biases)):
            x = x @ z.T + b
            if i < len(effective) - 1:
                x = torch.relu(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with(x, [w * m for w, m in zip(self.weights, self.masks)])

    def density(self) -> float:
        alive = sum(float(m.sum()) for m in self.masks)
        return alive / sum(m.numel() for m in self.masks)

    def n_weights(self) -> int:
        return sum(math.prod(w.shape) for w in self.weights)
