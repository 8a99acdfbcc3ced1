"""Porian et al. 2024: compute-optimal scaling from IsoFLOP runs (Chinchilla's approach 2).

For each compute budget C, the runs of that IsoFLOP curve give loss against model size N; the
vertex of a parabola in log N through the runs around the minimum is N*(C). Then
N*(C) = k C^a by least squares in log space; `a` is the exponent the paper tracks
(Kaplan 0.73/0.88 vs Chinchilla 0.5). The paper's point is that three choices, not the data,
separate the two: counting the last layer's FLOPs, warmup length, and scale-dependent tuning.
How N and C are counted is a column of the released runs (`param_count`).

The fitting code is shared: common.scaling.compute_optimal_exponent (isoflop_minima, fit_power_law, bootstrap).
"""
from __future__ import annotations

from optrepro.scaling import compute_optimal_exponent  # noqa: F401  (shared: common/scaling/fit.py)
