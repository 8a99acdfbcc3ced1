"""One row, one seed: the power-law random-feature model (common.scaling.random_features) for one
(a, b), solved exactly; the seed draws the random projection (one N_max x M Gaussian matrix whose
first N rows are the width-N student, so the loss surface is smooth in N) and the finite-data samples.

Measured, each as a least-squares log-log slope (sign flipped where the loss falls):
- time_exp: of L(t) - L(inf) against t at width `n_time`, over t in `t_range` (the infinite-width
  time scaling, the bottleneck term subtracted);
- width_exp: of L(inf, N) against N over `n_range` (the model-size bottleneck);
- n_star_exp, t_star_exp, loss_exp: of the compute-optimal width N*(C), time t* = C / N* and loss
  L*(C) against compute C = N t, over `budgets` (N* from common.scaling.isoflop_minima: a parabola in
  log N around the best width of the grid);
- asymmetry = t_star_exp - n_star_exp (positive: steps grow faster than parameters);
- gap_early, gap_late, gap_growth: the gap between test and train loss of gradient flow on P
  samples as a fraction of the test loss, 1 - train / test, at the two `gap_times`, and its growth
  between them (data reuse builds the gap up; the absolute gap early on is mostly the samples' noise
  in the train loss, ~ sqrt(2 / P) of the loss, so it is measured relative to the loss)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.scaling import isoflop_minima
from optrepro.scaling.random_features import Solved, Theory, finite_data_curves, loglog_slope, problem


@dataclass
class Config(BaseConfig):
    a: float = 2.0
    """Target power exponent: (w*_k)^2 lambda_k = k^-a (a > 1)."""
    b: float = 1.5
    """Spectral exponent: lambda_k = k^-b."""
    M: int = 2000
    """Modes (the features' dimension)."""
    widths: list = field(default_factory=lambda: [8, 1024, 25])
    """[min, max, count]: the log-spaced grid of student widths N."""
    n_time: int = 1024
    t_range: list = field(default_factory=lambda: [10.0, 1000.0, 20])
    n_range: list = field(default_factory=lambda: [16, 512])
    budgets: list = field(default_factory=lambda: [1.0e3, 1.0e5, 9])
    P: int = 256
    n_data: int = 512
    gap_times: list = field(default_factory=lambda: [1.0, 1000.0])


def preflight(cfg: Config) -> None:
    if not (cfg.a > 1 and cfg.b > 0 and cfg.M >= 16):
        raise ConfigError(f"need a > 1, b > 0 and M >= 16; got a={cfg.a}, b={cfg.b}, M={cfg.M}")
    lo, hi, n = cfg.widths
    if not (1 <= lo < hi <= cfg.M and n >= 3):
        raise ConfigError(f"widths [min, max, count] must satisfy 1 <= min < max <= M={cfg.M} and count >= 3, got {cfg.widths}")
    if not (cfg.n_range[0] >= lo and cfg.n_range[1] <= hi and cfg.n_range[0] < cfg.n_range[1]):
        raise ConfigError(f"n_range {cfg.n_range} must lie inside the widths [{lo}, {hi}]")
    if not (1 <= cfg.n_time <= hi and 1 <= cfg.n_data <= hi and cfg.P >= 1):
        raise ConfigError(f"n_time ({cfg.n_time}) and n_data ({cfg.n_data}) must be in [1, {hi}], P >= 1")
    if not (0 < cfg.t_range[0] < cfg.t_range[1] and 0 < cfg.budgets[0] < cfg.budgets[1]
            and 0 < cfg.gap_times[0] < cfg.gap_times[1]):
        raise ConfigError("t_range, budgets and gap_times must be increasing positive pairs")


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("closed forms: a few SVDs, seconds")
    lam, w_star = problem(cfg.M, cfg.a, cfg.b)
    rng = np.random.default_rng(cfg.seed)
    lo, hi, n = cfg.widths
    A = rng.standard_normal((int(hi), cfg.M))
    widths = sorted({int(round(x)) for x in np.geomspace(lo, hi, int(n))})
    solved = {N: Solved(A[:N], lam, w_star) for N in sorted(set(widths) | {cfg.n_time})}

    ts = np.geomspace(cfg.t_range[0], cfg.t_range[1], int(cfg.t_range[2]))
    s = solved[cfg.n_time]
    time_exp = -loglog_slope(ts, s.loss(ts) - s.floor)
    ns = [N for N in widths if cfg.n_range[0] <= N <= cfg.n_range[1]]
    width_exp = -loglog_slope(ns, [solved[N].floor for N in ns])

    Cs = np.geomspace(cfg.budgets[0], cfg.budgets[1], int(cfg.budgets[2]))
    C, N, L = [], [], []
    for c in Cs:
        for w in widths:
            C.append(c), N.append(w), L.append(float(solved[w].loss(c / w)[0]))
    c_opt, n_opt, l_opt, skipped = isoflop_minima(np.array(C), np.array(N), np.array(L), inside=True)
    if len(c_opt) < 3:
        raise ConfigError(f"only {len(c_opt)} compute budgets have an interior optimum width (skipped: {skipped}); "
                          f"widen `widths` or narrow `budgets`")
    n_star_exp = loglog_slope(c_opt, n_opt)
    t_star_exp = loglog_slope(c_opt, np.asarray(c_opt) / np.asarray(n_opt))
    loss_exp = -loglog_slope(c_opt, l_opt)

    train, test = finite_data_curves(A[:cfg.n_data], lam, w_star, cfg.P, cfg.gap_times, rng)
    gap = 1 - train / test  # the gap as a fraction of the test loss
    th = Theory(cfg.a, cfg.b)
    for k, (c, nn, ll) in enumerate(zip(c_opt, n_opt, l_opt)):
        ctx.log(k, compute=float(c), n_star=float(nn), loss_star=float(ll))
    return {"time_exp": time_exp, "width_exp": width_exp, "n_star_exp": n_star_exp, "t_star_exp": t_star_exp,
            "loss_exp": loss_exp, "asymmetry": t_star_exp - n_star_exp,
            "gap_early": float(gap[0]), "gap_late": float(gap[1]), "gap_growth": float(gap[1] - gap[0]),
            "theory_time_exp": th.time_exponent, "theory_width_exp": th.width_exponent,
            "theory_n_star_exp": th.n_star_exponent, "budgets_used": float(len(c_opt))}
