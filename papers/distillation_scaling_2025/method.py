"""The distillation scaling law and its fit.

The student's cross-entropy L_S after distilling for D_S tokens, with N_S (non-embedding) parameters,
from a teacher of cross-entropy L_T; L~_S is the cross-entropy the same student reaches by
supervised training on the same tokens (here measured, not modelled: our sweep trains it):

    L_S = L_T + L_T^(-c0) * (1 + (L_T / (L~_S d1))^(1/f1))^(-c1 f1) * (A N_S^-alpha + B D_S^-beta)^gamma

The form is written from our memory of the paper's Equation 8 (the search tool returned the paper's
abstract and Figure 1 caption, not the equation): kind `unverified`. Its parts: the teacher's loss
as the floor; a broken power law in the ratio L_T / L~_S (the teacher against the student's own
capacity) whose break d1 and sharpness f1 give the 'capacity gap'; and a Chinchilla-like term in
N_S and D_S. Fitted by least squares on log L_S from several starting points (the best is kept);
tests/reference/test_distill_law.py recovers the parameters from data the law generates."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from optrepro.errors import ConfigError

PARAMS = ("c0", "c1", "d1", "f1", "A", "alpha", "B", "beta", "gamma")
POSITIVE = ("c1", "d1", "f1", "A", "alpha", "B", "beta", "gamma")


def distillation_law(L_T, L_sup, N, D, p: dict) -> np.ndarray:
    L_T, L_sup, N, D = (np.asarray(v, float) for v in (L_T, L_sup, N, D))
    ratio = L_T / (L_sup * p["d1"])
    gap = (1.0 + ratio ** (1.0 / p["f1"])) ** (-p["c1"] * p["f1"])
    return L_T + L_T ** (-p["c0"]) * gap * (p["A"] * N ** -p["alpha"] + p["B"] * D ** -p["beta"]) ** p["gamma"]


def _unpack(x) -> dict:
    p = dict(zip(PARAMS, x))
    return {k: (float(np.exp(v)) if k in POSITIVE else float(v)) for k, v in p.items()}


def _pack(p: dict) -> np.ndarray:
    return np.array([np.log(p[k]) if k in POSITIVE else p[k] for k in PARAMS], float)


STARTS = [
    dict(c0=0.0, c1=1.0, d1=1.0, f1=1.0, A=10.0, alpha=0.3, B=10.0, beta=0.3, gamma=1.0),
    dict(c0=0.5, c1=0.5, d1=0.8, f1=0.5, A=100.0, alpha=0.5, B=100.0, beta=0.3, gamma=0.5),
    dict(c0=-0.5, c1=2.0, d1=1.2, f1=2.0, A=3.0, alpha=0.2, B=30.0, beta=0.4, gamma=1.5),
    dict(c0=1.0, c1=0.3, d1=1.0, f1=0.3, A=1000.0, alpha=0.7, B=1000.0, beta=0.6, gamma=0.3),
]


@dataclass
class LawFit:
    params: dict
    rmse_pct: float
    """Root mean square of the relative residuals on the fitted points, in percent."""
    ok: bool

    def predict(self, L_T, L_sup, N, D) -> np.ndarray:
        return distillation_law(L_T, L_sup, N, D, self.params)


def fit_distillation_law(L_T, L_sup, N, D, L_S, starts=None) -> LawFit:
    """Least squares on log L_S, from each of `starts` (default STARTS); the lowest cost wins."""
    L_T, L_sup, N, D, L_S = (np.asarray(v, float) for v in (L_T, L_sup, N, D, L_S))
    if len(L_S) <= len(PARAMS):
        raise ConfigError(f"{len(L_S)} points for the law's {len(PARAMS)} parameters: need more points")

    def resid(x):
        with np.errstate(all="ignore"):
            r = np.log(distillation_law(L_T, L_sup, N, D, _unpack(x))) - np.log(L_S)
        return np.where(np.isfinite(r), r, 1e3)

    best = None
    for s in starts or STARTS:
        res = least_squares(resid, _pack(s), method="trf", max_nfev=4000, x_scale="jac")
        if best is None or res.cost < best.cost:
            best = res
    p = _unpack(best.x)
    pred = distillation_law(L_T, L_sup, N, D, p)
    rel = (pred - L_S) / L_S
    return LawFit(p, float(100 * np.sqrt(np.mean(rel ** 2))), bool(best.success and np.all(np.isfinite(pred))))
