"""Binary logistic regression on (optionally) badly scaled features: the test bed of the Polyak-step
papers (PSPS, SANIA). One row, one seed.

Data: the features are standardized (training-set mean 0, variance 1), then, with `scale_exp` k > 0,
column j is multiplied by 10^u_j, u_j ~ U(-k, k) drawn from the seed (the papers' "badly scaled"
datasets use k = 3). Labels are +-1, the loss is mean log(1 + exp(-y x.w)), the weights start at 0,
there is no regularization and no intercept (the papers' setting), so the infimum of every
minibatch loss is 0 on separable data and f_star = 0 is the Polyak steps' lower bound.

Optimizers: `method` polyak (common.optim.polyak with `precond`: SPS, PSPS, SANIA), polyak_momentum
(common.optim.polyak.PolyakMomentum: the Polyak step for momentum methods, `form`, `momentum`, `c`) or
the torch baselines sgd, sgdm (heavy-ball momentum `momentum`), adam, adagrad at `lr`. The seed draws the split, the column scales, the minibatch
order and the Hutchinson probes; rows that share a seed share all of them but the probes' use, so
a method run on the original and on the rescaled data sees the same examples in the same order.

Metrics: `train_loss` and `log10_train_loss` (the full training loss at the end; also logged every
epoch as the curve), `test_acc` (%), `test_loss`."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError, DataMissing, Diverged
from optrepro.optim.polyak import MOMENTUM_FORMS, PRECONDITIONERS, PolyakMomentum, PreconditionedPolyak
from optrepro.run import RunContext
from optrepro.train import epoch_batches

METHODS = ("polyak", "polyak_momentum", "sgd", "sgdm", "adam", "adagrad")
MINI_DATASETS = ("breast_cancer", "digits_binary")


@dataclass
class LogRegConfig(BaseConfig):
    dataset: str = "breast_cancer"
    """breast_cancer (sklearn, 569 x 30) | digits_binary (sklearn digits, 0-4 vs 5-9, 1797 x 64) |
    libsvm:<name> (full scale: $OPTREPRO_DATA/libsvm/<name>, LIBSVM format, labels mapped to +-1)."""
    scale_exp: float = 0.0
    """k: column j is scaled by 10^U(-k, k) after standardizing (0: the standardized data)."""
    test_frac: float = 0.25
    method: str = "polyak"
    precond: str = "identity"
    """polyak only: identity (SPS) | hutchinson | adagrad | adam | adagrad_sqr | adam_sqr."""
    lr: float = 1.0
    """sgd/adam/adagrad: the learning rate; polyak: the multiplier of the Polyak step (1: the paper's)."""
    max_step: float = 0.0
    """polyak, polyak_momentum: cap on the step size (SPS_max, eta_max); 0: none."""
    momentum: float = 0.0
    """polyak_momentum, sgdm: the momentum parameter beta."""
    form: str = "mag"
    """polyak_momentum: mag (ALR-SMAG) | hb (heavy-ball form)."""
    c: float = 1.0
    """polyak_momentum: the constant c in (f - f*) / (c ||d||^2)."""
    beta: float = 0.999
    """polyak: the Hutchinson / Adam-type averaging factor."""
    alpha: float = 1e-5
    """polyak hutchinson: the floor on |D|."""
    eps: float = 1e-8
    batch_size: int = 32
    epochs: int = 30
    log_every_epochs: int = 1


def preflight(cfg: LogRegConfig) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.precond not in PRECONDITIONERS:
        raise ConfigError(f"precond must be one of {', '.join(PRECONDITIONERS)}, got {cfg.precond!r}")
    if cfg.form not in MOMENTUM_FORMS:
        raise ConfigError(f"form must be one of {', '.join(MOMENTUM_FORMS)}, got {cfg.form!r}")
    if not 0 <= cfg.momentum < 1 or not cfg.c > 0:
        raise ConfigError(f"momentum must be in [0, 1) and c > 0, got momentum={cfg.momentum} c={cfg.c}")
    if cfg.dataset not in MINI_DATASETS and not cfg.dataset.startswith("libsvm:"):
        raise ConfigError(f"dataset must be one of {', '.join(MINI_DATASETS)} or libsvm:<name>, got {cfg.dataset!r}")
    if cfg.dataset.startswith("libsvm:") and not _libsvm_path(cfg.dataset).exists():
        raise DataMissing(f"{_libsvm_path(cfg.dataset)} is not on disk: download the LIBSVM file "
                          f"(https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary.html) into "
                          f"{_libsvm_path(cfg.dataset).parent} (set OPTREPRO_DATA to use another directory)")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ConfigError(f"lr must be a finite number > 0, got {cfg.lr}")
    if not 0 <= cfg.beta < 1:
        raise ConfigError(f"beta must be in [0, 1), got {cfg.beta}")
    if cfg.scale_exp < 0 or not 0 < cfg.test_frac < 1:
        raise ConfigError(f"scale_exp must be >= 0 and test_frac in (0, 1), got {cfg.scale_exp}, {cfg.test_frac}")
    if cfg.batch_size < 1 or cfg.epochs < 1 or cfg.log_every_epochs < 1:
        raise ConfigError(f"batch_size, epochs and log_every_epochs must be >= 1, got {cfg.batch_size}, "
                          f"{cfg.epochs}, {cfg.log_every_epochs}")


def _libsvm_path(name: str):
    from optrepro.data.core import data_root
    return data_root() / "libsvm" / name.split(":", 1)[1]


def raw(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) with y in {-1, +1}."""
    if dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer
        X, y = load_breast_cancer(return_X_y=True)
        return X.astype(np.float64), np.where(y == 1, 1.0, -1.0)
    if dataset == "digits_binary":
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        return X.astype(np.float64), np.where(y >= 5, 1.0, -1.0)
    from sklearn.datasets import load_svmlight_file
    X, y = load_svmlight_file(str(_libsvm_path(dataset)))
    X = np.asarray(X.todense(), dtype=np.float64)
    labels = np.unique(y)
    if len(labels) != 2:
        raise DataMissing(f"{dataset}: expected 2 labels, found {len(labels)}")
    return X, np.where(y == labels.max(), 1.0, -1.0)


def column_scales(d: int, k: float, seed: int) -> np.ndarray:
    """10^u_j, u_j ~ U(-k, k): the badly-scaled datasets' column factors (ones for k = 0)."""
    if k == 0:
        return np.ones(d)
    return 10.0 ** np.random.default_rng(7_919 + int(seed)).uniform(-k, k, size=d)


def load(cfg: LogRegConfig):
    """(x_train, y_train, x_test, y_test, scales) as float64 tensors."""
    X, y = raw(cfg.dataset)
    idx = np.random.default_rng(int(cfg.seed)).permutation(len(X))
    n_test = int(round(len(X) * cfg.test_frac))
    te, tr = idx[:n_test], idx[n_test:]
    mu, sd = X[tr].mean(0), X[tr].std(0)
    sd[sd == 0] = 1.0  # constant columns (digits' empty corner pixels) stay 0
    V = column_scales(X.shape[1], cfg.scale_exp, cfg.seed)
    Z = (X - mu) / sd * V
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return t(Z[tr]), t(y[tr]), t(Z[te]), t(y[te]), V


def logistic_loss(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean_i log(1 + exp(-y_i x_i.w)), computed stably."""
    return torch.nn.functional.softplus(-y * (x @ w)).mean()


def build(cfg: LogRegConfig, w: torch.Tensor):
    if cfg.method == "polyak":
        return PreconditionedPolyak([w], lr=cfg.lr, precond=cfg.precond, max_step=cfg.max_step or math.inf, beta=cfg.beta,
                                    alpha=cfg.alpha, eps=cfg.eps, seed=10_000 + int(cfg.seed))
    if cfg.method == "polyak_momentum":
        return PolyakMomentum([w], beta=cfg.momentum, form=cfg.form, lr=cfg.lr, c=cfg.c,
                              max_step=cfg.max_step or math.inf)
    if cfg.method in ("sgd", "sgdm"):
        return torch.optim.SGD([w], lr=cfg.lr, momentum=cfg.momentum if cfg.method == "sgdm" else 0.0)
    if cfg.method == "adam":
        return torch.optim.Adam([w], lr=cfg.lr, betas=(0.9, cfg.beta), eps=cfg.eps)
    return torch.optim.Adagrad([w], lr=cfg.lr, eps=cfg.eps)


def run(cfg: LogRegConfig, ctx: RunContext) -> dict:
    ctx.no_checkpoint("logistic regression on a few hundred examples: seconds")
    xtr, ytr, xte, yte, _ = load(cfg)
    w = torch.zeros(xtr.shape[1], dtype=torch.float64, requires_grad=True)
    opt = build(cfg, w)
    idx = epoch_batches(len(xtr), cfg.batch_size, cfg.seed)
    per_epoch = len(xtr) // min(cfg.batch_size, len(xtr))
    steps = cfg.epochs * per_epoch

    def full_loss() -> float:
        with torch.no_grad():
            return float(logistic_loss(w, xtr, ytr))

    def log10(v: float) -> float:
        return math.log10(max(v, 1e-300))

    for step in range(steps):
        i = idx(step)
        if cfg.method.startswith("polyak"):
            lv = float(opt.step(lambda: logistic_loss(w, xtr[i], ytr[i])))
        else:
            def closure():
                opt.zero_grad()
                loss = logistic_loss(w, xtr[i], ytr[i])
                loss.backward()
                return loss
            lv = float(opt.step(closure))
        if not (math.isfinite(lv) and bool(torch.isfinite(w).all())):
            raise Diverged(step + 1, "loss", lv)
        if (step + 1) % (per_epoch * cfg.log_every_epochs) == 0:
            ctx.log(step + 1, epoch=(step + 1) // per_epoch, log10_train_loss=log10(full_loss()))
    train = full_loss()
    if not math.isfinite(train):
        raise Diverged(steps, "train_loss", train)
    with torch.no_grad():
        acc = 100.0 * float(((xte @ w) * yte > 0).double().mean())
        test = float(logistic_loss(w, xte, yte))
    return {"train_loss": train, "log10_train_loss": log10(train), "test_acc": acc, "test_loss": test}
