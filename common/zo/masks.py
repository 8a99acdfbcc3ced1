"""Parameter masks for sparse zeroth-order updates (one entry per parameter of a ParamSpace).

Only matrices (dim >= 2) are masked; vectors (biases, norm gains) stay dense, a small share of the
parameters. `density` is the share of a matrix's entries that the direction moves.
- magnitude_masks: Sparse MeZO (Liu et al. 2024): the smallest-|w| entries, as a per-matrix threshold
  τ evaluated on the fly (|w| <= τ), so no mask is stored.
- random_masks: a fixed random subset of the same size (the control).
- sensitivity_masks: the largest |∂L/∂w| entries on one batch (ZO-Bench's gradient sparsity,
  DeepZero-style pruning by a saliency); needs one first-order gradient, computed once."""
from __future__ import annotations

import torch

from common.errors import ConfigError


def _check_density(density: float) -> float:
    if not 0 < density <= 1:
        raise ConfigError(f"mask density must be in (0, 1], got {density}")
    return float(density)


def magnitude_masks(params, density: float) -> list:
    density = _check_density(density)
    out = []
    for p in params:
        if p.dim() < 2 or density == 1:
            out.append(None)
            continue
        k = max(1, int(round(density * p.numel())))
        out.append(float(p.detach().abs().reshape(-1).kthvalue(k).values))
    return out


def random_masks(params, density: float, seed: int = 0) -> list:
    density = _check_density(density)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for p in params:
        if p.dim() < 2 or density == 1:
            out.append(None)
            continue
        k = max(1, int(round(density * p.numel())))
        m = torch.zeros(p.numel(), dtype=torch.bool)
        m[torch.randperm(p.numel(), generator=gen)[:k]] = True
        out.append(m.reshape(p.shape).to(p.device))
    return out


def sensitivity_masks(params, grads, density: float) -> list:
    density = _check_density(density)
    out = []
    for p, g in zip(params, grads):
        if p.dim() < 2 or density == 1:
            out.append(None)
            continue
        k = max(1, int(round(density * p.numel())))
        m = torch.zeros(p.numel(), dtype=torch.bool, device=p.device)
        m[g.detach().abs().reshape(-1).topk(k).indices] = True
        out.append(m.reshape(p.shape))
    return out
