"""misfitting_2025: one row = one fitting choice on one dataset. `mode: fit` fits the Chinchilla
law with the row's choices (the seed seeds the bootstrap of the exponent); `mode: published`
evaluates given parameters on the same points (objective, frontier), to set a published fit
beside ours."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.scaling import FitError, bootstrap, chinchilla_frontier, chinchilla_objective, fit_chinchilla, load_runs

DATA = Path(__file__).parent / "data"
SOURCES = {
    # name: (file, N column, D column or None (then D = C / 6N), C column or None, loss column)
    "misfitting": ("scaling_results_last_ckpt_only.csv", "N", "D", None, "loss"),
    "misfitting_noemb": ("scaling_results_last_ckpt_only.csv", "N_no_emb", "D", None, "loss"),
    "chinchilla": ("chinchilla_fig4_epoch.csv", "Model Size", None, "Training FLOP", "loss"),
}


@dataclass
class Config(BaseConfig):
    data: str = "misfitting"
    """misfitting | misfitting_noemb (N without embeddings) | chinchilla (Hoffmann Fig. 4 points, Epoch AI)"""
    mode: str = "fit"
    """fit | published"""
    loss: str = "huber"
    delta: float = 1e-3
    space: str = "log"
    init: str = "grid"
    """grid (Hoffmann's, best top_k refined) | single (one start: x0)"""
    top_k: int = 100
    x0: list = field(default_factory=lambda: [6.0, 6.0, 0.5, 0.5, 0.5])
    params: dict = field(default_factory=dict)
    """mode published: E, A, B, alpha, beta."""
    budget: float = 1e21
    """FLOPs at which the compute-optimal tokens per parameter are reported."""
    n_boot: int = 100


def _load(cfg: Config):
    if cfg.data not in SOURCES:
        raise ConfigError(f"data '{cfg.data}' unknown; valid: {', '.join(SOURCES)}")
    f, ncol, dcol, ccol, lcol = SOURCES[cfg.data]
    req = [ncol, lcol] + [c for c in (dcol, ccol) if c]
    df = load_runs(DATA / f, required=req, positive=req, min_rows=6)
    N = df[ncol].values.astype(float)
    D = df[dcol].values.astype(float) if dcol else df[ccol].values.astype(float) / (6 * N)
    return N, D, df[lcol].values.astype(float)


def preflight(cfg: Config) -> None:
    _load(cfg)
    if cfg.mode not in ("fit", "published"):
        raise ConfigError(f"mode '{cfg.mode}' unknown; valid: fit, published")
    if cfg.mode == "published" and set(cfg.params) != {"E", "A", "B", "alpha", "beta"}:
        raise ConfigError("mode published: give params E, A, B, alpha, beta")
    if cfg.init not in ("grid", "single"):
        raise ConfigError(f"init '{cfg.init}' unknown; valid: grid, single")


def _summary(p: dict, N, D, L, cfg) -> dict:
    Ns, Ds = chinchilla_frontier(cfg.budget, p["A"], p["B"], p["alpha"], p["beta"])
    return {**{k: float(v) for k, v in p.items()}, "a_exponent": p["beta"] / (p["alpha"] + p["beta"]),
            "log10_tokens_per_param": float(np.log10(Ds / Ns)),
            "objective": chinchilla_objective(N, D, L, **p, loss=cfg.loss, delta=cfg.delta, space=cfg.space)}


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("fits to the released data")
    N, D, L = _load(cfg)
    if cfg.mode == "published":
        out = _summary(dict(cfg.params), N, D, L, cfg)
        ctx.log(0, **out)
        return out
    kw = dict(loss=cfg.loss, delta=cfg.delta, space=cfg.space)
    try:
        f = fit_chinchilla(N, D, L, **kw, top_k=cfg.top_k) if cfg.init == "grid" else \
            fit_chinchilla(N, D, L, **kw, x0=cfg.x0)
        ci, _ = bootstrap(lambda i: {"a": fit_chinchilla(N[i], D[i], L[i], **kw, x0=f.x()).a_exponent},
                          len(N), n=cfg.n_boot, seed=cfg.seed)
    except FitError as e:
        raise ConfigError(str(e)) from None
    out = {**_summary(f.params(), N, D, L, cfg), "a_exponent_p05": ci["a"][0], "a_exponent_p95": ci["a"][1]}
    ctx.log(0, **out)
    return out
