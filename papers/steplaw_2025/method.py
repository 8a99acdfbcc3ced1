"""Step Law (Li et al. 2025): the optimal learning rate and batch size as power laws,
    lr* = exp(c_lr) N^a D^b,      bs* = exp(c_bs) D^c        (bs in tokens)
fitted by least squares in log space to the runs near the optimum of each (N, D) grid: every run
whose smoothed final loss is within `threshold` (relative) of its group's best counts as optimal,
so the fit sees the flat basin, not one noisy argmin. `threshold = 0` keeps the argmin only (a
fitting-choice variant). Written from the paper's description of the procedure.
"""
from __future__ import annotations

import numpy as np


def near_optimal(df, threshold: float = 0.0025, loss_col: str = "smooth loss"):
    best = df.groupby(["N", "D"])[loss_col].transform("min")
    rel = df[loss_col] / best - 1
    return df[rel <= threshold] if threshold > 0 else df[rel == 0]


def fit_lr_bs(df, seq_len: int = 2048):
    """(c_lr, a, b), (c_bs, c) by OLS on log values; bs converted to tokens."""
    X = np.c_[np.ones(len(df)), np.log(df.N.values), np.log(df.D.values)]
    lr = np.linalg.lstsq(X, np.log(df.lr.values), rcond=None)[0]
    Xb = np.c_[np.ones(len(df)), np.log(df.D.values)]
    bs = np.linalg.lstsq(Xb, np.log(df.bs.values * seq_len), rcond=None)[0]
    return lr, bs


def predict(lr_p, bs_p, N, D):
    return (np.exp(lr_p[0] + lr_p[1] * np.log(N) + lr_p[2] * np.log(D)), np.exp(bs_p[0] + bs_p[1] * np.log(D)))


def heldout_gap(df, threshold: float, seq_len: int = 2048, loss_col: str = "smooth loss") -> np.ndarray:
    """Leave one (N, D) group out: fit on the others, predict (lr, bs) for it, take its run
    nearest to the prediction in (log lr, log bs), and return that run's loss relative to the
    group's best (in %), one value per group."""
    gaps = []
    for key, g in df.groupby(["N", "D"]):
        rest = near_optimal(df.drop(g.index), threshold, loss_col)
        lr_p, bs_p = fit_lr_bs(rest, seq_len)
        lr_hat, bs_hat = predict(lr_p, bs_p, key[0], key[1])
        d = np.hypot(np.log(g.lr.values / lr_hat), np.log(g.bs.values * seq_len / bs_hat))
        pick = g.iloc[int(np.argmin(d))]
        gaps.append(100 * (pick[loss_col] / g[loss_col].min() - 1))
    return np.array(gaps)
