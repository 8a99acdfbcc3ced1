"""Surge phenomenon (Li et al. 2024): at a fixed number of training samples, the learning rate
that minimizes the loss, as a function of batch size B,
- for SGD grows with B (linear scaling, then a plateau), and
- for Adam-style (sign-like) updates first rises, then falls past a peak batch size B_noise, and
  the peak moves to larger B as training goes on.
Nothing new to implement in the optimizer: the measurement is the argmin over a learning-rate grid
per batch size, and summary statistics of the resulting curve (`surge_stats`)."""
from __future__ import annotations

import numpy as np


def surge_stats(log2_batches, best_log2_lr) -> dict:
    """peak: the batch with the largest optimal lr (the largest such batch on ties);
    drop_after_peak: log2 lr at the peak minus at the largest batch (> 0: the lr falls again);
    rise_to_peak: log2 lr at the peak minus at the smallest batch; total_rise: last minus first."""
    b, lr = np.asarray(log2_batches, float), np.asarray(best_log2_lr, float)
    i = int(np.flatnonzero(lr == lr.max())[-1])
    return {"peak_log2_batch": float(b[i]), "drop_after_peak": float(lr[i] - lr[-1]),
            "rise_to_peak": float(lr[i] - lr[0]), "total_rise": float(lr[-1] - lr[0])}
