"""Benchmark bilevel problems, all offline.

- Quadratic: strongly convex quadratic lower level; y*(x) and dF/dx in closed form.
- NonUnique: the lower level has a line of solutions (singular g_yy); the optimistic bilevel
  optimum is in closed form. Implicit methods meet a singular Hessian here; penalty methods do not.
- HyperClean: data hyper-cleaning. A fraction of training labels is replaced by a different
  random class; one weight sigmoid(x_i) per training example; the lower level trains a
  classifier on the weighted loss, the upper level is the loss on a clean validation set.
- L2Reg: one L2 coefficient exp(x_j) per weight of a logistic regression (Lorraine et al.).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from optrepro.bilevel.core import Bilevel


class Quadratic(Bilevel):
    """g(x, y) = 1/2 y^T A y - y^T B x,  f(x, y) = 1/2 ||y - c||^2 + rho/2 ||x||^2 + d^T x.
    y*(x) = A^{-1} B x;  dF/dx = B^T A^{-1} (y* - c) + rho x + d."""

    def __init__(self, dx: int = 5, dy: int = 8, cond: float = 10.0, rho: float = 0.1, seed: int = 0,
                 dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        Q, _ = torch.linalg.qr(torch.randn(dy, dy, generator=g, dtype=dtype))
        eig = torch.logspace(0, math.log10(cond), dy, dtype=dtype)
        self.A = Q @ torch.diag(eig) @ Q.T
        self.B = torch.randn(dy, dx, generator=g, dtype=dtype)
        self.c = torch.randn(dy, generator=g, dtype=dtype)
        self.d = torch.randn(dx, generator=g, dtype=dtype) * 0.1
        self.rho, self.dx, self.dy, self.L = rho, dx, dy, float(eig.max())

    def g(self, x, y):
        return 0.5 * y @ self.A @ y - y @ self.B @ x

    def f(self, x, y):
        return 0.5 * (y - self.c).square().sum() + 0.5 * self.rho * x.square().sum() + self.d @ x

    def y_star(self, x):
        return torch.linalg.solve(self.A, self.B @ x)

    def hypergrad_exact(self, x):
        return self.B.T @ torch.linalg.solve(self.A, self.y_star(x) - self.c) + self.rho * x + self.d

    def bound_constants(self, x, y) -> dict:
        """Constants of common.bilevel.inexact's error bound (exact here: f_y = y - c, g_yy = A,
        g_xy = -B^T do not move with y)."""
        if not hasattr(self, "_eig"):
            self._eig = torch.linalg.eigvalsh(self.A)
            self._bnorm = float(torch.linalg.matrix_norm(self.B, 2))
        return {"mu": float(self._eig[0]), "L_g": float(self._eig[-1]), "L_f": 1.0, "L_fx": 0.0, "L_H": 0.0,
                "L_B": 0.0, "B_norm": self._bnorm}

    def x_opt(self):
        """argmin_x F(x): F is a convex quadratic in x."""
        M = torch.linalg.solve(self.A, self.B)
        return torch.linalg.solve(M.T @ M + self.rho * torch.eye(self.dx, dtype=M.dtype), M.T @ self.c - self.d)


class NonUnique(Bilevel):
    """y in R^2, x in R.  g(x, y) = 1/2 (a^T y - x)^2: every y on the line a^T y = x is a
    lower-level solution (g_yy = a a^T has rank 1).  f(x, y) = 1/2 ||y - c||^2 + 1/2 (x - d)^2.
    Optimistic bilevel value: min over x and over y in the solution set.  The closest point
    of the line to c gives  F(x) = 1/2 (x - a^T c)^2 / ||a||^2 + 1/2 (x - d)^2, so
    x* = (a^T c / ||a||^2 + d) / (1 / ||a||^2 + 1), and y* the projection of c on a^T y = x*."""

    def __init__(self, a=(1.0, 1.0), c=(2.0, -1.0), d: float = 0.5, dtype=torch.float64):
        super().__init__()
        self.a = torch.tensor(a, dtype=dtype)
        self.c = torch.tensor(c, dtype=dtype)
        self.d = d

    def g(self, x, y):
        return 0.5 * (self.a @ y - x.sum()).square()

    def f(self, x, y):
        return 0.5 * (y - self.c).square().sum() + 0.5 * (x.sum() - self.d) ** 2

    def solution(self):
        aa, ac = float(self.a @ self.a), float(self.a @ self.c)
        x = (ac / aa + self.d) / (1 / aa + 1)
        y = self.c + self.a * (x - ac) / aa
        return torch.tensor([x], dtype=self.a.dtype), y

    def value(self, x, y) -> float:
        return float(self.f(x, y))

    def optimal_value(self) -> float:
        return self.value(*self.solution())


# --- learning problems ---------------------------------------------------------------------

def _load(dataset: str, seed: int):
    from optrepro.data import load
    d = load(dataset, seed=seed)
    xtr, xte = d.x_train.flatten(1).double(), d.x_test.flatten(1).double()
    return xtr, d.y_train, xte, d.y_test, d.num_classes


class _Classifier:
    """y (flat) -> logits. 'linear' (multinomial logistic regression) or 'mlp' (one tanh hidden
    layer, nonconvex lower level) or 'rnn' (reads the input as a sequence of rows; the BO-REP
    paper's setting in miniature)."""

    def __init__(self, kind: str, d_in: int, classes: int, hidden: int = 32, rows: int = 8, seed: int = 0):
        if kind not in ("linear", "mlp", "rnn"):
            raise ValueError(f"model '{kind}' unknown; valid: linear, mlp, rnn")
        self.kind, self.d_in, self.k, self.h, self.rows = kind, d_in, classes, hidden, rows
        if kind == "linear":
            self.shapes = [(d_in, classes), (classes,)]
        elif kind == "mlp":
            self.shapes = [(d_in, hidden), (hidden,), (hidden, classes), (classes,)]
        else:
            if d_in % rows:
                raise ValueError(f"rnn: input size {d_in} is not a multiple of rows={rows}")
            c = d_in // rows
            self.shapes = [(c, hidden), (hidden, hidden), (hidden,), (hidden, classes), (classes,)]
        self.n = sum(math.prod(s) for s in self.shapes)
        self.seed = seed

    def init(self, dtype=torch.float64) -> torch.Tensor:
        g = torch.Generator().manual_seed(10_000 + self.seed)
        parts = []
        for s in self.shapes:
            parts.append((torch.randn(s, generator=g, dtype=dtype) / math.sqrt(s[0])).flatten()
                         if len(s) == 2 and self.kind != "linear" else torch.zeros(math.prod(s), dtype=dtype))
        return torch.cat(parts)

    def unflatten(self, y):
        out, i = [], 0
        for s in self.shapes:
            n = math.prod(s)
            out.append(y[i:i + n].view(s))
            i += n
        return out

    def __call__(self, y, X):
        p = self.unflatten(y)
        if self.kind == "linear":
            return X @ p[0] + p[1]
        if self.kind == "mlp":
            return torch.tanh(X @ p[0] + p[1]) @ p[2] + p[3]
        Wi, Wh, b, Wo, bo = p
        seq = X.view(len(X), self.rows, -1)
        h = torch.zeros(len(X), self.h, dtype=X.dtype)
        for t in range(self.rows):
            h = torch.tanh(seq[:, t] @ Wi + h @ Wh + b)
        return h @ Wo + bo


class HyperClean(Bilevel):
    """Data hyper-cleaning (Franceschi et al. 2017; the F2SA, PBGD and BO-REP benchmark).
    g(x, y) = mean_i sigmoid(x_i) CE(model_y(a_i), noisy label_i) + mu ||y||^2 over n_train
    examples; f(x, y) = mean CE on the clean validation set. Predicted corrupted: sigmoid(x_i) < 1/2."""

    def __init__(self, dataset: str = "digits", corrupt: float = 0.5, n_train: int = 500, n_val: int = 500,
                 model: str = "linear", mu: float = 1e-3, seed: int = 0, hidden: int = 32):
        super().__init__()
        if not 0 <= corrupt < 1:
            raise ValueError(f"corrupt must be in [0, 1), got {corrupt}")
        xtr, ytr, xte, yte, k = _load(dataset, seed)
        if n_train + n_val > len(xtr):
            raise ValueError(f"n_train + n_val = {n_train + n_val} > {len(xtr)} training examples of {dataset}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(xtr), generator=g)
        tr, va = perm[:n_train], perm[n_train:n_train + n_val]
        self.Xtr, self.Xval, self.Xte = xtr[tr], xtr[va], xte
        self.ytrue, self.yval, self.yte = ytr[tr], ytr[va], yte
        noisy = self.ytrue.clone()
        self.corrupted = torch.rand(n_train, generator=g) < corrupt
        shift = torch.randint(1, k, (n_train,), generator=g)  # a different class, uniformly
        noisy[self.corrupted] = (noisy[self.corrupted] + shift[self.corrupted]) % k
        self.ynoisy = noisy
        self.net = _Classifier(model, xtr.shape[1], k, hidden=hidden, seed=seed)
        self.mu, self.k = mu, k
        self.dx, self.dy = n_train, self.net.n

    def x0(self):
        return torch.zeros(self.dx, dtype=torch.float64)

    def y0(self):
        return self.net.init()

    def g(self, x, y):
        ce = F.cross_entropy(self.net(y, self.Xtr), self.ynoisy, reduction="none")
        return (torch.sigmoid(x) * ce).mean() + self.mu * y.square().sum()

    def f(self, x, y):
        return F.cross_entropy(self.net(y, self.Xval), self.yval)

    def evaluate(self, x, y) -> dict:
        with torch.no_grad():
            acc = (self.net(y, self.Xte).argmax(1) == self.yte).double().mean().item() * 100
            flagged = torch.sigmoid(x) < 0.5
            tp = (flagged & self.corrupted).sum().item()
            prec = tp / max(1, flagged.sum().item())
            rec = tp / max(1, self.corrupted.sum().item())
            f1 = 0.0 if tp == 0 else 2 * prec * rec / (prec + rec)
            return {"test_acc": acc, "f1": f1 * 100, "val_loss": float(self.f(x, y))}


class L2Reg(Bilevel):
    """Per-weight L2 (Lorraine et al. 2020, also jaxopt's example): y = logistic-regression
    weights, x_j = log of the L2 coefficient of weight j (one hyperparameter per weight, or one in
    all when `per_weight` is False). g = CE_train + 1/2 sum_j (exp(x_j) + l2_floor) y_j^2;  f = CE_val.
    `l2_floor` > 0 keeps the lower level strongly convex however small exp(x) gets (MAID's bound
    divides by the strong-convexity modulus)."""

    def __init__(self, dataset: str = "digits", n_train: int = 100, n_val: int = 100, per_weight: bool = True,
                 seed: int = 0, init_log_l2: float = -4.0, l2_floor: float = 0.0):
        super().__init__()
        xtr, ytr, xte, yte, k = _load(dataset, seed)
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(xtr), generator=g)
        tr, va = perm[:n_train], perm[n_train:n_train + n_val]
        self.Xtr, self.ytr, self.Xval, self.yval, self.Xte, self.yte = xtr[tr], ytr[tr], xtr[va], ytr[va], xte, yte
        self.net = _Classifier("linear", xtr.shape[1], k)
        self.per_weight, self.init_log_l2, self.l2_floor = per_weight, init_log_l2, l2_floor
        self.dy = self.net.n
        self.dx = self.dy if per_weight else 1

    def x0(self):
        return torch.full((self.dx,), self.init_log_l2, dtype=torch.float64)

    def y0(self):
        return self.net.init()

    def g(self, x, y):
        reg = 0.5 * (x.exp() * y.square()).sum()
        if self.l2_floor:
            reg = reg + 0.5 * self.l2_floor * y.square().sum()
        return F.cross_entropy(self.net(y, self.Xtr), self.ytr) + reg

    def bound_constants(self, x, y) -> dict:
        """Constants of common.bilevel.inexact's error bound, each a proven upper bound:
        - softmax cross-entropy's Hessian in the logits is <= 1/2 (Boehning), so the mean CE over
          inputs a~ = (a, 1) is (1/2) lambda_max(A~^T A~ / n)-smooth (L_f on validation; plus the
          L2 for L_g on training);
        - the logits' softmax Hessian S(z) = diag(p) - p p^T moves by at most 6 ||dz|| (each of its
          three terms by 2 ||dz||), so g_yy is L_H = 6 mean ||a~||^3 Lipschitz;
        - g_x = 1/2 exp(x) * y^2 (per weight) or 1/2 exp(x) ||y||^2 (global): g_xy is exp(x) * y
          (diagonal) or exp(x) y^T, Lipschitz in y with max exp(x)."""
        if not hasattr(self, "_lip"):
            def half_lmax(X):
                A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
                return 0.5 * float(torch.linalg.matrix_norm(A, 2)) ** 2 / len(A)
            cube = float((self.Xtr.square().sum(1) + 1).pow(1.5).mean())
            self._lip = (half_lmax(self.Xtr), half_lmax(self.Xval), 6.0 * cube)
        ce_tr, ce_val, L_H = self._lip
        e = x.detach().exp()
        b = float((e * y.detach()).abs().max()) if self.per_weight else float(e[0] * y.detach().norm())
        return {"mu": float(e.min()) + self.l2_floor, "L_g": ce_tr + float(e.max()) + self.l2_floor, "L_f": ce_val,
                "L_fx": 0.0, "L_H": L_H, "L_B": float(e.max()), "B_norm": b}

    def f(self, x, y):
        return F.cross_entropy(self.net(y, self.Xval), self.yval)

    def evaluate(self, x, y) -> dict:
        with torch.no_grad():
            lg = self.net(y, self.Xte)
            return {"test_acc": (lg.argmax(1) == self.yte).double().mean().item() * 100,
                    "test_loss": float(F.cross_entropy(lg, self.yte)), "val_loss": float(self.f(x, y)),
                    "train_loss": float(F.cross_entropy(self.net(y, self.Xtr), self.ytr))}
