"""deepzero_2023: training a ReLU MLP from scratch on 8x8 digits with zeroth-order gradients, one row =
one estimator, one seed. CGE (dense, or sparse: ZO-GraSP or uniform layer densities, coordinates
redrawn every epoch), RGE with as many queries per step as sparse CGE, and first-order SGD; all with
SGD + momentum on the same schedule. Logs test accuracy per epoch, queries and multiply-adds per step."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from optrepro.config import BaseConfig
from optrepro.data import load
from optrepro.errors import ConfigError
from optrepro.zo.estimators import check_eps
from optrepro.papers.deepzero_2023.method import (cge_layerwise, forward, init_mlp, loss_of, random_coords, rge_mlp,
                                         zo_grasp_densities)

ESTIMATORS = ("fo", "cge", "rge")


@dataclass
class Config(BaseConfig):
    data: str = "digits"
    """digits (offline) or mnist1d (generated); cifar10 is full scale (ResNet-20 not implemented here)."""
    hidden: list = field(default_factory=lambda: [64])
    estimator: str = "cge"
    """fo | cge | rge"""
    density: float = 1.0
    """Share of weight coordinates CGE estimates per step (biases always)."""
    layer_densities: str = "zo_grasp"
    """zo_grasp | uniform: how the density is spread over layers (CGE with density < 1)."""
    reuse: bool = True
    """CGE: compute the layers before a perturbed layer once (feature reuse)."""
    q: int = 0
    """RGE queries per step (0: as many as sparse CGE at `density` uses)."""
    mu: float = 5e-3
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    grasp_queries: int = 192
    """RGE queries of each of ZO-GraSP's two gradient estimates (DeepZero: 192)."""


def preflight(cfg: Config) -> None:
    if cfg.data not in ("digits", "mnist1d"):
        raise ConfigError(f"data '{cfg.data}': the MLP runs on digits or mnist1d; CIFAR-10 with ResNet-20 "
                          "(the paper's headline) needs the data and the distributed CGE, not in this package")
    if cfg.estimator not in ESTIMATORS:
        raise ConfigError(f"estimator '{cfg.estimator}' unknown; valid: {', '.join(ESTIMATORS)}")
    if cfg.layer_densities not in ("zo_grasp", "uniform"):
        raise ConfigError(f"layer_densities '{cfg.layer_densities}' unknown; valid: zo_grasp, uniform")
    if not 0 < cfg.density <= 1:
        raise ConfigError(f"density must be in (0, 1], got {cfg.density}")
    check_eps(cfg.mu, "coordinate step mu")
    check_eps(cfg.lr, "lr")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.q < 0:
        raise ConfigError("epochs and batch_size must be >= 1 and q >= 0")


def _accuracy(params, x, y) -> float:
    with torch.no_grad():
        return float((forward(params, x).argmax(1) == y).float().mean())


def run(cfg: Config, ctx) -> dict:
    split = load(cfg.data, seed=cfg.seed)
    x_tr, x_te = split.x_train.reshape(len(split.x_train), -1), split.x_test.reshape(len(split.x_test), -1)
    y_tr, y_te = split.y_train, split.y_test
    sizes = [x_tr.shape[1], *cfg.hidden, split.num_classes]
    params = init_mlp(sizes, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    n_w = [W.numel() for W, _ in params]
    densities = [cfg.density] * len(params)
    if cfg.estimator != "fo" and cfg.density < 1 and cfg.layer_densities == "zo_grasp":
        idx = torch.randperm(len(x_tr), generator=gen)[:256]
        densities = zo_grasp_densities(params, x_tr[idx], y_tr[idx], cfg.density, cfg.grasp_queries, cfg.mu, 1e-2, gen)
    sparse_queries = sum(max(1, round(d * n)) for d, n in zip(densities, n_w)) + sum(b.numel() for _, b in params)
    q = cfg.q or sparse_queries
    bufs = [(torch.zeros_like(W), torch.zeros_like(b)) for W, b in params]
    steps_per_epoch = len(x_tr) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    sched = lambda t: 0.5 * (1 + torch.cos(torch.tensor(torch.pi * t / total)).item())  # cosine, as DeepZero
    lp = {"params": params, "t_step": 0.0, "queries": 0, "macs": 0, "step": 0}
    for epoch in ctx.steps(cfg.epochs, {"bufs": bufs, "gen": gen, "loop": lp}):  # one checkpointed step per epoch
        params, t_step, queries, macs, step = lp["params"], lp["t_step"], lp["queries"], lp["macs"], lp["step"]
        coords = random_coords(params, densities, gen)  # redrawn every epoch
        perm = torch.randperm(len(x_tr), generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            xb, yb = x_tr[idx], y_tr[idx]
            t0 = time.perf_counter()
            if cfg.estimator == "fo":
                leaves = [(W.clone().requires_grad_(), b.clone().requires_grad_()) for W, b in params]
                loss = loss_of(leaves, xb, yb)
                gs = torch.autograd.grad(loss, [t for pair in leaves for t in pair])
                grads, f0, nq, nm = list(zip(gs[0::2], gs[1::2])), float(loss.detach()), 0, 0
            elif cfg.estimator == "cge":
                grads, f0, nq, nm = cge_layerwise(params, xb, yb, coords, cfg.mu, cfg.reuse)
            else:
                grads, f0, nq = rge_mlp(params, xb, yb, q, cfg.mu, gen)
                nm = nq * sum(n_w) * len(xb)
            lr = cfg.lr * sched(step)
            with torch.no_grad():
                new = []
                for (W, b), (gw, gb), (bw, bb) in zip(params, grads, bufs):
                    bw.mul_(cfg.momentum).add_(gw)
                    bb.mul_(cfg.momentum).add_(gb)
                    new.append((W - lr * bw, b - lr * bb))
                params = new
            t_step += time.perf_counter() - t0
            queries += nq
            macs += nm
            step += 1
        lp.update(params=params, t_step=t_step, queries=queries, macs=macs, step=step)
        ctx.log(step, loss=f0, acc=_accuracy(params, x_te, y_te), train_acc=_accuracy(params, x_tr, y_tr))
    params, t_step, queries, macs, step = lp["params"], lp["t_step"], lp["queries"], lp["macs"], lp["step"]
    return {"acc": _accuracy(params, x_te, y_te), "train_acc": _accuracy(params, x_tr, y_tr),
            "train_loss": float(F.cross_entropy(forward(params, x_tr), y_tr)),
            "queries_per_step": queries / step, "macs_per_step": macs / step, "step_ms": 1e3 * t_step / step,
            "density_first_layer": densities[0], "density_last_layer": densities[-1]}
