"""Scaling laws as plain functions of numpy arrays (N parameters, D tokens, C FLOPs).

- power_law(x, a, k) = k x^a
- chinchilla(N, D, E, A, B, alpha, beta) = E + A / N^alpha + B / D^beta      (Hoffmann et al. 2022)
- kaplan_nd(N, D, Nc, Dc, aN, aD) = ((Nc / N)^(aN / aD) + Dc / D)^aD           (Kaplan et al. 2020, eq. 1.5)
- kaplan_n(N, Nc, aN) = (Nc / N)^aN,  kaplan_d(D, Dc, aD) = (Dc / D)^aD
- chinchilla_frontier(C, ...): the compute-optimal N*(C), D*(C) of the Chinchilla law under C = k N D
  (k = 6 by default):  N* = G (C / k)^(beta / (alpha + beta)),  D* = (C / k) / N*,
  G = (alpha A / (beta B))^(1 / (alpha + beta)).
"""
from __future__ import annotations

import numpy as np


def power_law(x, a, k):
    return k * np.asarray(x, dtype=float) ** a


def chinchilla(N, D, E, A, B, alpha, beta):
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return E + A / N ** alpha + B / D ** beta


def kaplan_nd(N, D, Nc, Dc, aN, aD):
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return ((Nc / N) ** (aN / aD) + Dc / D) ** aD


def kaplan_n(N, Nc, aN):
    return (Nc / np.asarray(N, dtype=float)) ** aN


def kaplan_d(D, Dc, aD):
    return (Dc / np.asarray(D, dtype=float)) ** aD


def chinchilla_frontier(C, A, B, alpha, beta, k: float = 6.0):
    """(N*, D*) minimizing E + A/N^alpha + B/D^beta subject to k N D = C."""
    C = np.asarray(C, dtype=float)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    N = G * (C / k) ** (beta / (alpha + beta))
    return N, (C / k) / N


def flops_per_token(n_layers: int, d_model: int, vocab: int, seq_len: int, d_ff: int | None = None,
                    embedding: bool = False, head: bool = True, attention: bool = False) -> float:
    """Training FLOPs per token (forward + backward = 3 x forward, 2 FLOPs per multiply-add) of a
    decoder-only transformer. The choices Porian et al. show matter:
    - `head`: count the last (unembedding) layer, 2 * d_model * vocab per token forward (Kaplan's
      count leaves it out);
    - `embedding`: count the input embedding as a matmul (usually a lookup: excluded);
    - `attention`: count the attention score/value products, 2 * 2 * seq_len * d_model per layer."""
    d_ff = 4 * d_model if d_ff is None else d_ff
    fwd = n_layers * (2 * 4 * d_model * d_model + 2 * 2 * d_model * d_ff)  # qkvo + mlp
    if attention:
        fwd += n_layers * 2 * 2 * seq_len * d_model
    if head:
        fwd += 2 * d_model * vocab
    if embedding:
        fwd += 2 * d_model * vocab
    return 3.0 * fwd
