"""One row, one seed: a small MLP (one tanh hidden layer) trained on minibatches by EGN (method.py),
SGD with momentum or Adam, on sklearn's diabetes (regression, squared error on the standardized
target) or digits (10 classes, cross-entropy). Each seed draws a 60/20/20 train/validation/test split;
features are standardized on the training part. The same minibatch order for every optimizer.

Metrics: `val_loss` (what the tuning selects on), `test_loss`, and for digits `test_acc`; the training
loss is logged every epoch."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError, Diverged
from optrepro.train import epoch_batches

from . import method

DATASETS = {"diabetes": "mse", "digits": "ce"}
OPTIMIZERS = ("egn", "sgd", "adam")


@dataclass
class EGNConfig(BaseConfig):
    dataset: str = "diabetes"
    """diabetes (regression) | digits (classification), both sklearn, offline."""
    optimizer: str = "egn"
    """egn | sgd (momentum 0.9) | adam."""
    lr: float = 1.0
    lam: float = 1.0
    """egn: the Levenberg-Marquardt regularization λ."""
    momentum: float = 0.0
    """egn: momentum μ on the direction (sgd always uses 0.9)."""
    hidden: int = 32
    batch_size: int = 32
    epochs: int = 30


Config = EGNConfig


def preflight(cfg: EGNConfig) -> None:
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {cfg.dataset!r}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if not (cfg.lr > 0 and cfg.lam > 0 and 0 <= cfg.momentum < 1):
        raise ConfigError(f"need lr > 0, lam > 0, momentum in [0, 1); got lr={cfg.lr} lam={cfg.lam} momentum={cfg.momentum}")
    if cfg.hidden < 1 or cfg.batch_size < 1 or cfg.epochs < 1:
        raise ConfigError(f"hidden, batch_size and epochs must be >= 1, got {cfg.hidden}, {cfg.batch_size}, {cfg.epochs}")


def load(dataset: str, seed: int):
    """((x, y) train, val, test) as tensors: float64 features, standardized on the training part."""
    from sklearn import datasets as skd
    X, y = (skd.load_diabetes if dataset == "diabetes" else skd.load_digits)(return_X_y=True)
    idx = np.random.default_rng(int(seed)).permutation(len(X))
    n1, n2 = int(0.6 * len(X)), int(0.8 * len(X))
    parts = [idx[:n1], idx[n1:n2], idx[n2:]]
    mu, sd = X[parts[0]].mean(0), X[parts[0]].std(0)
    sd[sd == 0] = 1.0
    X = (X - mu) / sd
    if dataset == "diabetes":
        ym, ys = y[parts[0]].mean(), y[parts[0]].std()
        Y = torch.tensor((y - ym) / ys, dtype=torch.float64).view(-1, 1)
    else:
        Y = torch.tensor(y, dtype=torch.long)
    Xt = torch.tensor(X, dtype=torch.float64)
    return [(Xt[p], Y[p]) for p in parts]


def run(cfg: EGNConfig, ctx) -> dict:
    ctx.no_checkpoint("a 32-unit MLP on a few hundred examples: seconds")
    loss_kind = DATASETS[cfg.dataset]
    (xtr, ytr), (xva, yva), (xte, yte) = load(cfg.dataset, cfg.seed)
    c = 1 if loss_kind == "mse" else 10
    torch.manual_seed(cfg.seed)
    model = nn.Sequential(nn.Linear(xtr.shape[1], cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, c)).double()
    if cfg.optimizer == "egn":
        opt = method.EGN(model, loss_kind, lr=cfg.lr, lam=cfg.lam, momentum=cfg.momentum)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def loss_on(x, y) -> torch.Tensor:
        return method.mean_loss(model(x), y, loss_kind)

    idx = epoch_batches(len(xtr), cfg.batch_size, cfg.seed)
    per_epoch = len(xtr) // min(cfg.batch_size, len(xtr))
    for step in range(cfg.epochs * per_epoch):
        i = idx(step)
        if cfg.optimizer == "egn":
            lv = opt.step(xtr[i], ytr[i])
        else:
            opt.zero_grad()
            loss = loss_on(xtr[i], ytr[i])
            loss.backward()
            opt.step()
            lv = float(loss.detach())
        if not math.isfinite(lv) or not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise Diverged(step + 1, "loss", lv)
        if (step + 1) % per_epoch == 0:
            with torch.no_grad():
                ctx.log(step + 1, epoch=(step + 1) // per_epoch, train_loss=float(loss_on(xtr, ytr)))
    with torch.no_grad():
        out = {"val_loss": float(loss_on(xva, yva)), "test_loss": float(loss_on(xte, yte))}
        if loss_kind == "ce":
            out["test_acc"] = 100.0 * float((model(xte).argmax(1) == yte).double().mean())
    for k, v in out.items():
        if not math.isfinite(v):
            raise Diverged(cfg.epochs * per_epoch, k, v)
    return out
