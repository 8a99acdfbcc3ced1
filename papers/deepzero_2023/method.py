"""DeepZero (Chen et al. 2023) on a ReLU MLP: coordinate-wise gradient estimates (CGE) with
feature reuse, the sparsity-induced protocol (ZO-GraSP layer-wise densities, random coordinates
within each layer, redrawn every epoch), and the random-vector baseline (RGE).

CGE, forward differences:  ĝ_i = [L(θ + μ e_i) - L(θ)] / μ  for the selected coordinates i.
Feature reuse: a coordinate of layer l does not change the layers before l, so their output a_l is
computed once per step and only layers l..L run for the perturbed copies (DeepZero Sec. 4.3). The
perturbed copies of one layer run as one batched computation (DeepZero's forward parallelization).

ZO-GraSP (Sec. 4.2): the GraSP score S = -θ ⊙ H g at initialization with g and H g estimated from
function values only, g by RGE and H g ≈ [ĝ(θ + δ ĝ) - ĝ(θ)] / δ with the same directions; the
weights with the highest scores are pruned globally, which gives each layer its density.

The generic CGE (common.zo.cge, flat parameters through functional_call) is the reference that the
layer-wise version with feature reuse is tested against (tests/reference/test_zo.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def init_mlp(sizes, seed: int) -> list:
    """[(W, b), ...] for a ReLU MLP with torch.nn.Linear's default initialization."""
    torch.manual_seed(seed)
    return [tuple(p.detach().clone() for p in (lin.weight, lin.bias))
            for lin in (torch.nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))]


def forward(params, x, start: int = 0):
    """Logits of the MLP from layer `start` on (x: the input of that layer); params may carry a
    leading batch dimension K on any layer (perturbed copies), which then broadcasts."""
    h = x
    for l in range(start, len(params)):
        W, b = params[l]
        h = torch.matmul(h, W.transpose(-1, -2)) + b.unsqueeze(-2)
        if l < len(params) - 1:
            h = F.relu(h)
    return h


def loss_of(params, x, y) -> torch.Tensor:
    """Mean cross-entropy; with batched params returns one loss per copy."""
    logits = forward(params, x)
    if logits.dim() == 2:
        return F.cross_entropy(logits, y)
    k = logits.shape[0]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(k), reduction="none").reshape(k, -1).mean(1)


def inputs_of_layers(params, x) -> list:
    """a_l for each layer l (a_0 = x): the features CGE reuses."""
    acts, h = [x], x
    for l in range(len(params) - 1):
        W, b = params[l]
        h = F.relu(h @ W.T + b)
        acts.append(h)
    return acts


@torch.no_grad()
def cge_layerwise(params, x, y, coords, mu: float, reuse: bool = True, chunk: int = 512):
    """CGE for the selected coordinates. coords[l] holds flat indices into cat(W_l.flatten(), b_l).
    Returns (grads [(gW, gb), ...], f0, queries, macs) where macs counts multiply-adds of the
    perturbed forwards (with reuse: layers l..L only; without: all layers)."""
    f0 = float(loss_of(params, x, y))
    acts = inputs_of_layers(params, x) if reuse else None
    n = x.shape[0]
    layer_macs = [W.numel() * n for W, _ in params]
    grads, queries, macs = [], 1, sum(layer_macs)
    for l, (W, b) in enumerate(params):
        flat = torch.cat([W.reshape(-1), b])
        g = torch.zeros_like(flat)
        idx_all = coords[l]
        for s in range(0, idx_all.numel(), chunk):
            idx = idx_all[s:s + chunk]
            k = idx.numel()
            pert = flat.repeat(k, 1)
            pert[torch.arange(k), idx] += mu
            Wk, bk = pert[:, :W.numel()].reshape(k, *W.shape), pert[:, W.numel():]
            if reuse:
                batched = [(Wk, bk)] + list(params[l + 1:])
                logits = forward(batched, acts[l])
                macs += k * sum(layer_macs[l:])
            else:
                batched = list(params[:l]) + [(Wk, bk)] + list(params[l + 1:])
                logits = forward(batched, x)
                macs += k * sum(layer_macs)
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(k),
                                     reduction="none").reshape(k, -1).mean(1)
            g[idx] = (losses - f0) / mu
            queries += k
        grads.append((g[:W.numel()].reshape(W.shape), g[W.numel():]))
    return grads, f0, queries, macs


@torch.no_grad()
def rge_mlp(params, x, y, q: int, mu: float, gen: torch.Generator):
    """DeepZero's RGE baseline: one-sided, directions u uniform on the unit sphere of each parameter
    tensor t (as the official code normalizes), scaled by the tensor's size d_t so that the estimate is
    unbiased for the smoothed gradient (E u_t u_t^T = I / d_t):
        ĝ_t = (d_t / q) Σ_j [L(θ + μ u_j) - L(θ)] / μ · u_j,t
    (the official code leaves the d_t factor to the learning rate; without it RGE does not move at the
    learning rate the other rows use). Returns (grads, f0, queries)."""
    f0 = float(loss_of(params, x, y))
    grads = [(torch.zeros_like(W), torch.zeros_like(b)) for W, b in params]
    for _ in range(q):
        us = []
        for W, b in params:
            uw, ub = torch.randn(W.shape, generator=gen), torch.randn(b.shape, generator=gen)
            us.append((uw / uw.norm(), ub / ub.norm()))
        pert = [(W + mu * uw, b + mu * ub) for (W, b), (uw, ub) in zip(params, us)]
        dd = (float(loss_of(pert, x, y)) - f0) / mu
        for (gw, gb), (uw, ub) in zip(grads, us):
            gw.add_(uw, alpha=dd * uw.numel() / q)
            gb.add_(ub, alpha=dd * ub.numel() / q)
    return grads, f0, q + 1


def zo_grasp_densities(params, x, y, density: float, q: int, mu: float, delta: float, gen) -> list:
    """Per-layer share of weights kept by ZO-GraSP at global `density` (biases are not pruned)."""
    state = gen.get_state()
    g1, _, _ = rge_mlp(params, x, y, q, mu, gen)
    shifted = [(W + delta * gw, b + delta * gb) for (W, b), (gw, gb) in zip(params, g1)]
    g2, _, _ = rge_mlp(shifted, x, y, q, mu, _clone(gen, state))  # same directions: H g by a difference
    scores = [-(W * (h2 - h1) / delta) for (W, _), (h1, _), (h2, _) in zip(params, g1, g2)]
    flat = torch.cat([s.reshape(-1) for s in scores])
    k = max(1, int(round(density * flat.numel())))
    keep_thresh = flat.kthvalue(k).values  # keep the k lowest scores (GraSP prunes the highest)
    return [float((s <= keep_thresh).float().mean()) for s in scores]


def _clone(gen, state):
    g = torch.Generator()
    g.set_state(state)
    return g


def random_coords(params, densities, gen) -> list:
    """Flat coordinates per layer: a random `densities[l]` share of W_l's entries, and every bias."""
    out = []
    for (W, b), d in zip(params, densities):
        k = max(1, int(round(d * W.numel())))
        w_idx = torch.randperm(W.numel(), generator=gen)[:k]
        out.append(torch.cat([w_idx.sort().values, W.numel() + torch.arange(b.numel())]))
    return out
