"""Data reweighting as a bilevel problem, solved stochastically with minibatch oracles.

    min_lam  f(theta*(lam))            f: loss on a small clean validation set
    theta*(lam) = argmin_theta  g(lam, theta) = sum_k p_k(lam) l_k(theta),   p = softmax(lam)

over K training sources (l_k: the mean loss on source k). Minibatch oracles: `SourceSampler` draws
`per_source` examples of every source at step t from a generator seeded by (seed, t), so a step's
batch is reproducible and a resumed run draws the same.

`penalty_minimax` is ScaleBiO's fully first-order algorithm (Pan et al. 2024; the value-function
penalty of F2SA/BOME in stochastic, minimax form):

    min_{lam, w} max_u   f(w) + alpha (g(lam, w) - g(lam, u))

one Adam step per minibatch on each of u (descends g), w (descends f + alpha g) and lam (descends
alpha (g(lam, w) - g(lam, u))), with alpha multiplied by `tau` at every outer iteration and the
learning rates divided by it (as the authors' code does). The gradient in lam is
alpha J_softmax(lam)^T (l(w) - l(u)) with l the per-source minibatch losses (tests check it).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def source_losses(per_example: torch.Tensor, source: torch.Tensor, n_sources: int) -> torch.Tensor:
    """Mean loss of each source over the examples of it in the batch, shape (n_sources,)."""
    sums = torch.zeros(n_sources, dtype=per_example.dtype).index_add(0, source, per_example)
    counts = torch.bincount(source, minlength=n_sources).to(per_example.dtype)
    if not bool((counts > 0).all()):
        raise ValueError("every source needs at least one example in the batch")
    return sums / counts


def weighted(lam: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """g = sum_k softmax(lam)_k losses_k."""
    return torch.softmax(lam, 0) @ losses


class SourceSampler:
    """Minibatches with `per_source` examples of every source (indices into X), reproducible per step."""

    def __init__(self, source: torch.Tensor, per_source: int, seed: int):
        self.n = int(source.max()) + 1
        self.pools = [torch.nonzero(source == k).flatten() for k in range(self.n)]
        self.per_source, self.seed = per_source, seed

    def batch(self, t: int, stream: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * stream + t)
        return torch.cat([p[torch.randint(0, len(p), (self.per_source,), generator=g)] for p in self.pools])


def penalty_minimax(model_w: nn.Module, model_u: nn.Module, lam: torch.Tensor, train_loss: Callable,
                    val_loss: Callable, steps_per_outer: int, outer: int, alpha0: float, tau: float, lr: float,
                    lr_lam: float, steps: Callable, log: Callable | None = None, freeze_lam: bool = False):
    """ScaleBiO's loop. train_loss(model, t) -> per-source losses of step t's minibatch (the same
    minibatch for u and w, as the authors reuse it); val_loss(model, t) -> scalar. `steps` is the
    caller's resumable step iterator over outer * steps_per_outer steps (given the state to save);
    freeze_lam: the same loop with the weights fixed (the ablation that keeps the validation data)."""
    lam_p = nn.Parameter(lam)
    opt_w = torch.optim.Adam(model_w.parameters(), lr=lr)
    opt_u = torch.optim.Adam(model_u.parameters(), lr=lr)
    opt_l = torch.optim.Adam([lam_p], lr=lr_lam)
    total = outer * steps_per_outer
    for t in steps(total, {"w": model_w, "u": model_u, "lam": lam_p, "opt_w": opt_w, "opt_u": opt_u,
                           "opt_l": opt_l}):
        i = (t - 1) // steps_per_outer
        alpha = alpha0 * tau ** (i + 1)
        for opt, base in ((opt_w, lr), (opt_u, lr), (opt_l, lr_lam)):
            for group in opt.param_groups:
                group["lr"] = base * tau ** (-i)
        lu = train_loss(model_u, t)
        lw = train_loss(model_w, t)
        fv = val_loss(model_w, t)
        loss_u = weighted(lam_p.detach(), lu)
        loss_w = fv + alpha * weighted(lam_p.detach(), lw)
        gap = alpha * (weighted(lam_p, lw.detach()) - weighted(lam_p, lu.detach()))
        for opt in (opt_w, opt_u, opt_l):
            opt.zero_grad(set_to_none=True)
        loss_u.backward()
        loss_w.backward()
        if not freeze_lam:
            gap.backward()
            opt_l.step()
        opt_u.step()
        opt_w.step()
        if log is not None:
            log(t, val=float(fv.detach()), gap=float(gap.detach()) / alpha, alpha=alpha)
    return lam_p.detach()
