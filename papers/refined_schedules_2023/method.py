r"""Schedule refinement (Defazio, Cutkosky, Mehta and Mishchenko 2023).

The paper bounds the last iterate of SGD with step sizes eta_t = lr * w_t. With no knowledge of the
problem the bound is smallest for linear decay, w_t = 1 - t/T. Given the gradient norms g_1..g_T
seen in a previous run of the same task, the bound is smallest for the *refined* schedule

    w_t  ∝  ||g_t||^-2 * sum_{p = t+1}^{T} ||g_p||^-2            (w_T = 0)

normalized so that max_t w_t = 1 (the base learning rate is the peak). With constant gradient norms it
is linear decay; where the norms shrink late in training it warms up (small w at the start, where the
norm is large) and anneals fast at the end (the tail sum vanishes). Before the mapping the norm
sequence is smoothed by a median filter whose width is `smooth` (0.1) of the sequence, with the
sequence reflected at its end so the last values keep their level. For optimizers whose step is
normalized per coordinate (Adam), the paper maps l1 norms with the power 1 instead of 2 (`power`).

What differs from the parent (a hand-picked schedule): two runs, the first (linear decay here, as
the paper recommends as the default) only to record ||g_t||. Where this comes from: the authors'
released scripts (the closed-form mapping and the median filter's padding) and the abstract; the
formula is checked in the tests against the paper's two limits (constant norms -> linear decay;
the schedule vanishes at T) and against the sum written out."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter


def smooth_norms(g, smooth: float = 0.1) -> np.ndarray:
    """Median filter of width 2*floor(smooth*T/2)+1 over the sequence reflected past its end."""
    g = np.asarray(g, dtype=np.float64)
    width = 2 * (int(smooth * len(g)) // 2) + 1
    if width <= 1:
        return g.copy()
    pad = 2 * width
    return median_filter(np.pad(g, (0, pad), mode="reflect"), size=width, mode="nearest")[:-pad]


def refine(g, power: float = 2.0, smooth: float = 0.1) -> np.ndarray:
    """The refined multipliers w_1..w_T (max 1, last 0) from the gradient norms g_1..g_T of a previous run."""
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 1 or len(g) < 2:
        raise ValueError(f"need a sequence of at least 2 gradient norms, got shape {g.shape}")
    if not (np.isfinite(g).all() and (g > 0).all()):
        raise ValueError("gradient norms must be finite and > 0")
    if power <= 0:
        raise ValueError(f"power must be > 0, got {power}")
    u = smooth_norms(g, smooth) ** -power
    tail = np.concatenate([np.cumsum(u[::-1])[::-1][1:], [0.0]])  # sum_{p > t} u_p
    w = u * tail
    return w / w.max()
