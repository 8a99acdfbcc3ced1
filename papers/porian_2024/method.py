"""Porian et al. 2024: compute-optimal scaling from IsoFLOP runs (Chinchilla's approach 2).

For each compute budget C, the runs of that IsoFLOP curve give loss against model size N; the
vertex of a parabola in log N through the runs around the minimum is N*(C). Then
N*(C) = k C^a by least squares in log space; `a` is the exponent the paper tracks
(Kaplan 0.73/0.88 vs Chinchilla 0.5). The paper's point is that three choices, not the data,
separate the two: counting the last layer's FLOPs, warmup length, and scale-dependent tuning.
How N and C are counted is a column of the released runs (`param_count`).

The fitting code is shared (common.scaling: isoflop_minima, fit_power_law, bootstrap).
"""
from __future__ import annotations

import numpy as np

from common.scaling import bootstrap, fit_power_law, isoflop_minima


def compute_optimal_exponent(flops, n, loss, window: int = 2, n_boot: int = 1000, seed: int = 0,
                             edge: str = "skip", inside: bool = False) -> dict:
    """Exponent a of N*(C) ~ C^a, its bootstrap 5-95% interval (resampling the budgets'
    optima), and the number of budgets used."""
    cs, ns, _, skipped = isoflop_minima(flops, n, loss, window=window, edge=edge, inside=inside)
    if len(cs) < 3:
        from common.scaling import FitError
        raise FitError(f"only {len(cs)} budget(s) have an IsoFLOP minimum inside the models run (no minimum for "
                       f"{', '.join(f'{c:.0e}' for c in skipped)}): the optimum lies outside the model range")
    a, k = fit_power_law(cs, ns)
    ci, _ = bootstrap(lambda i: {"a": np.polyfit(np.log(cs[i]), np.log(ns[i]), 1)[0]
                                 if len(np.unique(cs[i])) > 1 else a}, len(cs), n=n_boot, seed=seed)
    return {"n_exponent": a, "n_coef": k, "n_exponent_p05": ci["a"][0], "n_exponent_p95": ci["a"][1],
            "budgets": float(len(cs)), "budgets_skipped": float(len(skipped)), "minima": (cs, ns)}
