"""One row, one seed: l2-regularized logistic regression, f(w) = mean log(1 + exp(-y x.w)) + mu/2 ||w||^2,
solved by Newton with lazy Hessians (method.py) from w_0 = 0 until ||grad f|| <= tol, full batch,
float64. The data are common.tasks.logreg's (standardized features, a 75/25 split drawn by the seed;
the test set is not used), so the seeds differ in the training set.

The Hessian refresh period is `every` steps, or, with `every_dims` > 0, round(every_dims * d) steps
(every_dims = 1 is the paper's recommended m = d). The run stops at the tolerance or when the cost
reaches `budget` gradient-equivalents.

Metrics: `log10_cost`, log10 of the gradient-equivalents spent until ||grad|| <= tol (gradients + d per
Hessian, counted as the work is done; a run that does not reach tol reports its budget, and `reached`
is 0); `iters` and `hessians` used; `log10_grad`, the final gradient norm. The gradient norm against
the cost so far is logged along the way."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.tasks import logreg

from . import method


@dataclass
class LazyConfig(BaseConfig):
    dataset: str = "digits_binary"
    """breast_cancer | digits_binary | libsvm:<name> (full scale, $OPTREPRO_DATA/libsvm)."""
    mu: float = 1e-3
    """l2 regularization (makes the problem strongly convex)."""
    form: str = "cubic"
    """cubic (Algorithm 1) | regularized (the convex variant)."""
    M: float = 1.0
    """the regularization constant (cubic: M/6 ||h||^3; regularized: sqrt(M ||g||))."""
    every: int = 1
    """Hessian refresh period m (used when every_dims is 0)."""
    every_dims: float = 0.0
    """> 0: m = max(1, round(every_dims * d))."""
    tol: float = 1e-8
    budget: int = 100000
    """stop after this many gradient-equivalents."""


Config = LazyConfig


def preflight(cfg: LazyConfig) -> None:
    logreg.preflight(logreg.LogRegConfig(dataset=cfg.dataset))
    if cfg.form not in method.FORMS:
        raise ConfigError(f"form must be one of {', '.join(method.FORMS)}, got {cfg.form!r}")
    if not (cfg.M > 0 and cfg.tol > 0 and cfg.mu >= 0):
        raise ConfigError(f"need M > 0, tol > 0, mu >= 0; got M={cfg.M} tol={cfg.tol} mu={cfg.mu}")
    if cfg.every < 1 or cfg.every_dims < 0 or cfg.budget < 1:
        raise ConfigError(f"need every >= 1, every_dims >= 0, budget >= 1; got every={cfg.every} "
                          f"every_dims={cfg.every_dims} budget={cfg.budget}")


def period(cfg: LazyConfig, d: int) -> int:
    return max(1, round(cfg.every_dims * d)) if cfg.every_dims > 0 else cfg.every


def run(cfg: LazyConfig, ctx) -> dict:
    ctx.no_checkpoint("full-batch Newton on a few hundred examples: seconds")
    x, y, _, _, _ = logreg.load(logreg.LogRegConfig(dataset=cfg.dataset, seed=cfg.seed))
    d = x.shape[1]
    w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    opt = method.LazyNewton([w], M=cfg.M, every=period(cfg, d), form=cfg.form)

    def f():
        return logreg.logistic_loss(w, x, y) + 0.5 * cfg.mu * (w * w).sum()

    def grad_norm() -> float:
        with torch.enable_grad():
            (g,) = torch.autograd.grad(f(), [w])
        return float(g.norm())

    gn, cost_at_tol = grad_norm(), None  # the check at w_0 is not charged (every method pays it)
    it = 0
    while gn > cfg.tol and opt.cost < cfg.budget:
        opt.step(f)
        it += 1
        gn = grad_norm()  # the next step's gradient: charged by that step, so not counted here
        if not math.isfinite(gn):
            from optrepro.errors import Diverged
            raise Diverged(it, "grad_norm", gn)
        ctx.log(it, cost=opt.cost, log10_grad=math.log10(max(gn, 1e-300)))
    reached = gn <= cfg.tol
    cost = opt.cost if reached else cfg.budget
    return {"log10_cost": math.log10(max(cost, 1)), "cost": float(cost), "reached": float(reached),
            "iters": float(it), "hessians": float(opt.n_hess), "log10_grad": math.log10(max(gn, 1e-300))}
