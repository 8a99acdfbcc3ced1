"""One row, one seed: how well Kronecker products approximate a layer's Gauss-Newton matrix and its
full-matrix Adagrad (gradient covariance) matrix, at initialization or after `train_steps` of Adam.

A tanh MLP 64 -> 32 -> `width` -> 10 on sklearn digits (features scaled to [0, 1]); the seed draws the
initialization, the minibatch order and the `n_examples` examples the matrices are built on. For the
middle layer's weight W (width x 32, no bias):

- gn:       (1/n) Σ_i J_i' H_i J_i, J_i the Jacobian of example i's logits in vec(W), H_i the softmax
            cross-entropy's Hessian in the logits (diag(p) - p p');
- adagrad:  (1/n) Σ_i vec(G_i) vec(G_i)', G_i example i's gradient of the loss in W (true labels).

Each row computes one approximation `kind` (method.py: optimal, one_step = Shampoo squared, shampoo)
of both and reports `err_gn`, `err_adagrad`: the relative Frobenius error after the best scaling.

`train` (the train table): the shared classification task (common.tasks.classify) with the Shampoo
variants the paper's view motivates (common.curvature.shampoo: exponent 4 = Shampoo, exponent 2 =
Shampoo squared, one-sided) and SOAP (common.curvature.soap), optim.name 'shampoo' / 'soap' with their
arguments in optim.kwargs, or any registered optimizer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from optrepro.config import BaseConfig
from optrepro.curvature import optimizers as shared
from optrepro.errors import ConfigError
from optrepro.optim import preflight_outside_registry
from optrepro.tasks import classify

from . import method


@dataclass
class KronConfig(BaseConfig):
    kind: str = "one_step"
    """optimal | one_step (Shampoo's approximation squared) | shampoo."""
    width: int = 16
    """the studied layer is width x 32 (width * 32 parameters; the matrices are their square)."""
    train_steps: int = 0
    """Adam steps (lr 3e-3, batch 64) before the matrices are built (0: at initialization)."""
    n_examples: int = 512


Config = KronConfig
ClassifyConfig = classify.ClassifyConfig


def preflight(cfg) -> None:
    if isinstance(cfg, ClassifyConfig):
        if cfg.optim.name not in shared.SHARED:
            return classify.preflight(cfg)
        return preflight_outside_registry(cfg, classify.preflight, shared.maker(cfg.optim))
    if cfg.kind not in method.KINDS:
        raise ConfigError(f"kind must be one of {', '.join(method.KINDS)}, got {cfg.kind!r}")
    if not 2 <= cfg.width <= 32 or cfg.train_steps < 0 or not 16 <= cfg.n_examples <= 1347:
        raise ConfigError(f"need 2 <= width <= 32, train_steps >= 0, 16 <= n_examples <= 1347; got width={cfg.width} "
                          f"train_steps={cfg.train_steps} n_examples={cfg.n_examples}")


def _data(seed: int):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(int(seed)).permutation(len(X))[:1347]  # the training part (75%)
    return torch.tensor(X[idx] / 16.0, dtype=torch.float64), torch.tensor(y[idx], dtype=torch.long)


def matrices(cfg: KronConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(gn, adagrad) for the middle layer, after cfg.train_steps of Adam."""
    x, y = _data(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, cfg.width, bias=False), nn.Tanh(),
                          nn.Linear(cfg.width, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.train_steps):
        i = torch.randint(0, len(x), (64,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    xs, ys = x[:cfg.n_examples], y[:cfg.n_examples]
    params = {k: v.detach() for k, v in model.named_parameters()}
    W = params["2.weight"]

    def logits(w, xi):
        return functional_call(model, {**params, "2.weight": w}, (xi.unsqueeze(0),)).squeeze(0)

    J = vmap(jacrev(logits), in_dims=(None, 0))(W, xs).reshape(len(xs), 10, -1)  # n x 10 x (width*32)
    p = torch.softmax(vmap(logits, in_dims=(None, 0))(W, xs), -1)
    H = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    gn = torch.einsum("nkp,nkl,nlq->pq", J, H, J) / len(xs)

    def loss(w, xi, yi):
        return nn.functional.cross_entropy(logits(w, xi).unsqueeze(0), yi.unsqueeze(0))

    G = vmap(grad(loss), in_dims=(None, 0, 0))(W, xs, ys).reshape(len(xs), -1)
    return (gn + gn.T) / 2, G.T @ G / len(xs)


def run(cfg: KronConfig, ctx) -> dict:
    ctx.no_checkpoint("a few hundred Adam steps on a small MLP and two 512 x 512 matrices: seconds")
    gn, ada = matrices(cfg)
    m, n = cfg.width, 32
    out = {f"err_{name}": method.scaled_error(M, method.approximation(M, m, n, cfg.kind))
           for name, M in (("gn", gn), ("adagrad", ada))}
    ctx.log(cfg.train_steps, **out)  # metrics.jsonl: the errors at the point the matrices were built
    return out


def train(cfg, ctx) -> dict:
    return classify.run(cfg, ctx, make_optimizer=shared.maker(cfg.optim) if cfg.optim.name in shared.SHARED else None)
