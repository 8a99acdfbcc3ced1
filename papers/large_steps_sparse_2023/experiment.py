"""One row, one seed: batch-1 SGD on a diagonal linear network (beta = u * v) for sparse noiseless
regression, with a large step size for the first `large_frac` of the steps and the step divided by
`decay` after (the paper's "large step sizes, then decay" schedule). The seed draws the data and the
example order.

`normalized: false` is plain SGD with gamma = `rate` (the paper's algorithm); `normalized: true` sets
gamma_t = rate / lambda_{i_t}, `rate` then being the multiple of the sampled example's own curvature
(method.example_curvature), so that one value means the same thing on every data draw.

Metrics: `log10_test_loss` and `test_loss` on 1000 fresh points (noiseless, x ~ N(0, I): the test
loss is ||beta - beta*||^2 / 2); `l0`, the coordinates with |beta_i| > 1e-50 (the authors' threshold:
SGD's multiplicative noise drives unused coordinates to zero geometrically); `l0_1e6` (|beta_i| >
1e-6); `l1`, ||beta||_1; `log10_train_loss` at the end; `log10_stab_loss`, the median train loss over
the second half of the large-step phase (the loss-stabilisation level). A run whose residual on an
example exceeds 1e8 (or is not finite) ends as `diverged`, at that step, with no metrics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError, Diverged

from . import method


@dataclass
class SparseSGDConfig(BaseConfig):
    n: int = 80
    """Training examples (the authors' n=80, d=200 setting)."""
    d: int = 200
    r: int = 20
    """Nonzero coordinates of beta*."""
    n_test: int = 1000
    alpha: float = 0.1
    """Initialisation u_0 = alpha 1, v_0 = 0."""
    steps: int = 100000
    rate: float = 0.05
    """gamma (plain SGD) or c, the multiple of the example's curvature (normalized), in the large phase."""
    normalized: bool = False
    large_frac: float = 0.5
    """Fraction of the steps at the large rate; 1.0 is a constant step size."""
    decay: float = 20.0
    """The rate is divided by this after the large phase (the authors' factor)."""
    log_every: int = 1000


def preflight(cfg: SparseSGDConfig) -> None:
    if cfg.n < 1 or cfg.d < 1 or cfg.n_test < 1 or cfg.steps < 1 or cfg.log_every < 1:
        raise ConfigError(f"n, d, n_test, steps and log_every must be >= 1, got n={cfg.n} d={cfg.d} "
                          f"n_test={cfg.n_test} steps={cfg.steps} log_every={cfg.log_every}")
    if not 1 <= cfg.r <= cfg.d:
        raise ConfigError(f"r (the support of beta*) must be in [1, d={cfg.d}], got {cfg.r}")
    if not (cfg.rate > 0 and cfg.alpha > 0 and cfg.decay > 0):
        raise ConfigError(f"rate, alpha and decay must be > 0, got rate={cfg.rate} alpha={cfg.alpha} "
                          f"decay={cfg.decay}")
    if cfg.normalized and not cfg.rate < 2:
        raise ConfigError(f"normalized SGD needs rate < 2 (a step of 2/lambda or more is unstable on the "
                          f"example itself), got {cfg.rate}")
    if not 0 < cfg.large_frac <= 1:
        raise ConfigError(f"large_frac must be in (0, 1], got {cfg.large_frac}")
    switch = method.large_phase_end(cfg.steps, cfg.large_frac)
    if (switch - 1) // cfg.log_every * cfg.log_every < switch / 2:
        raise ConfigError(f"log_every={cfg.log_every} leaves no logged step in the second half of the large "
                          f"phase (steps {switch // 2} to {switch}): log10_stab_loss would be missing")


def run(cfg: SparseSGDConfig, ctx) -> dict:
    ctx.no_checkpoint("1e5 batch-1 steps on 200 coordinates: about a second")
    X, y, X_test, y_test, _ = method.sparse_regression(cfg.n, cfg.d, cfg.r, cfg.n_test, cfg.seed)
    rate = method.step_schedule(cfg.rate, cfg.steps, cfg.large_frac, cfg.decay)
    switch = method.large_phase_end(cfg.steps, cfg.large_frac)
    stab = []
    for t, u, v in method.sgd(X, y, cfg.steps, rate, normalized=cfg.normalized, alpha=cfg.alpha,
                              seed=cfg.seed + 1000, every=cfg.log_every):
        if u is None:
            raise Diverged(t, "residual", float("inf"))
        beta = u * v
        train = method.loss(X, y, beta)
        if switch / 2 <= t < switch:
            stab.append(train)
        ctx.log(t, log10_train_loss=method.finite_log10(train), l0=method.count_above(beta, 1e-50),
                log10_test_loss=method.finite_log10(method.loss(X_test, y_test, beta)))
    beta = u * v
    test = method.loss(X_test, y_test, beta)
    out = {"test_loss": test, "log10_test_loss": method.finite_log10(test),
           "log10_train_loss": method.finite_log10(method.loss(X, y, beta)),
           "l0": float(method.count_above(beta, 1e-50)), "l0_1e6": float(method.count_above(beta, 1e-6)),
           "l1": float(np.abs(beta).sum())}
    if stab:
        out["log10_stab_loss"] = method.finite_log10(float(np.median(stab)))
    return out
