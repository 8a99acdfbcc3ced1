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

from optrepro.errors import ConfigError


def _check_density(density: float) -> float:
    if not 0 < density <= 1:
        raise ConfigError(f"mask density must be in (0, 1], got {density}")
    return float(density)


def _per_matrix(params, density: float, select) -> list:
    """None for vectors (and for density 1); else select(p, k) with k = the entries to keep."""
    density = _check_density(density)
    return [None if p.dim() < 2 or density == 1 else select(i, p, max(1, int(round(density * p.numel()))))
            for i, p in enumerate(params)]


def _keep(shape, idx: torch.Tensor) -> torch.Tensor:
    m = torch.zeros(shape.numel(), dtype=torch.bool, device=idx.device)
    m[idx] = True
    return m.reshape(shape)


def magnitude_masks(params, density: float) -> list:
    """Per matrix the threshold τ = the k-th smallest |w| (the mask |w| <= τ is evaluated on the fly)."""
    return _per_matrix(params, density, lambda i, p, k: float(p.detach().abs().reshape(-1).kthvalue(k).values))


def random_masks(params, density: float, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    return _per_matrix(params, density,
                       lambda i, p, k: _keep(p.shape, torch.randperm(p.numel(), generator=gen)[:k]).to(p.device))


def sensitivity_masks(params, grads, density: float) -> list:
    grads = list(grads)
    return _per_matrix(params, density, lambda i, p, k: _keep(p.shape, grads[i].detach().abs().reshape(-1).topk(k).indices))
