"""Bilevel experiments (one row, one seed), for every bilevel paper's tables.

study: algorithm  run a bilevel algorithm (common.bilevel.ALGORITHMS, or `none`: train the lower
                  level only, hyperparameters fixed) on a problem up to an oracle budget. `grid`
                  tunes hyperparameters: every combination is run and the one with the lowest
                  final upper objective (validation loss, never test) is reported, so every row of
                  a table gets the same tuning budget when its grid has the same size.
study: hypergrad  one hypergradient at a fixed x: relative error and cosine against the exact
                  one (dense solve at a converged inner solution), its time and the bytes autograd
                  saves; `method` = unrolled | implicit_cg | implicit_neumann | custom_root,
                  `inner_steps` steps of the inner solver (and `terms` for Neumann/CG).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import torch

from optrepro.bilevel import ALGORITHMS, BilevelError, custom_root, implicit, inner_gd, run as run_algo, \
    saved_bytes, unrolled
from optrepro.bilevel import inexact
from optrepro.bilevel.problems import HyperClean, L2Reg, NonUnique, Quadratic
from optrepro.config import BaseConfig, closest
from optrepro.errors import ConfigError

PROBLEMS = ("hyperclean", "l2reg", "quadratic", "nonunique")
METHODS = ("unrolled", "implicit_cg", "implicit_neumann", "custom_root")


@dataclass
class BilevelConfig(BaseConfig):
    study: str = "algorithm"
    """algorithm | hypergrad"""
    problem: str = "hyperclean"
    """hyperclean | l2reg | quadratic | nonunique"""
    dataset: str = "digits"
    corrupt: float = 0.5
    """hyperclean: fraction of training labels replaced by another class."""
    n_train: int = 500
    n_val: int = 500
    model: str = "linear"
    """hyperclean lower-level model: linear | mlp | rnn"""
    hidden: int = 32
    mu: float = 1e-3
    """hyperclean: L2 on the lower-level weights (strong convexity of a linear model)."""
    per_weight: bool = True
    """l2reg: one L2 coefficient per weight (else one global)."""
    init_log_l2: float = -4.0
    l2_floor: float = 0.0
    """l2reg: L2 added to every weight on top of exp(x) (keeps the lower level strongly convex)."""
    track_true: bool = False
    """Solve the lower level exactly after every outer iteration (outside the budget) and report
    the true upper objective F(x) = f(x, y*(x)) and how often it rose (true_increases)."""
    hard_budget: bool = False
    """Stop at exactly `budget` oracle calls, inside an outer iteration if need be (for methods
    whose outer iteration can cost thousands of calls, like MAID's line search)."""
    algo: str = "aid_cg"
    hp: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    """{hp name: [values]}: every combination runs; the lowest final upper objective is kept."""
    budget: int = 20000
    """Oracle calls (gradients + Hessian/Jacobian-vector products)."""
    max_outer: int = 1_000_000
    curve_points: int = 20
    """Points of the (oracle calls, validation loss) curve the chosen grid point logs; 0: none."""
    # hypergrad study
    method: str = "implicit_cg"
    inner_steps: int = 100
    inner_lr: float = 0.3
    terms: int = 20
    """Neumann terms, or CG iterations."""
    x_scale: float = 1.0
    """hypergrad study: x = x0 + x_scale * N(0, 1) (seeded)."""


def preflight(cfg: BilevelConfig) -> None:
    if cfg.study not in ("algorithm", "hypergrad"):
        raise ConfigError(f"study '{cfg.study}' unknown{closest(cfg.study, ['algorithm', 'hypergrad'])}; valid: algorithm, hypergrad")
    if cfg.problem not in PROBLEMS:
        raise ConfigError(f"problem '{cfg.problem}' unknown{closest(cfg.problem, PROBLEMS)}; valid: {', '.join(PROBLEMS)}")
    if cfg.study == "algorithm" and cfg.algo not in (*ALGORITHMS, "none"):
        raise ConfigError(f"algo '{cfg.algo}' unknown{closest(cfg.algo, ALGORITHMS)}; valid: {', '.join(ALGORITHMS)}, none")
    if cfg.study == "hypergrad" and cfg.method not in METHODS:
        raise ConfigError(f"method '{cfg.method}' unknown{closest(cfg.method, METHODS)}; valid: {', '.join(METHODS)}")
    if cfg.model not in ("linear", "mlp", "rnn"):
        raise ConfigError(f"model '{cfg.model}' unknown; valid: linear, mlp, rnn")
    if not 0 <= cfg.corrupt < 1:
        raise ConfigError(f"corrupt must be in [0, 1), got {cfg.corrupt}")
    if cfg.study == "algorithm" and cfg.algo in ("maid", "inexact_gd") and cfg.problem not in ("l2reg", "quadratic"):
        raise ConfigError(f"{cfg.algo} needs the constants of its error bound, which only l2reg and quadratic state")
    if cfg.budget < 1:
        raise ConfigError("budget must be >= 1 oracle call")
    for k, v in cfg.grid.items():
        if not isinstance(v, (list, tuple)) or not v:
            raise ConfigError(f"grid.{k}: give a non-empty list of values")
    if cfg.problem in ("hyperclean", "l2reg"):
        from optrepro.data.core import check_available
        check_available(cfg.dataset)


def make_problem(cfg: BilevelConfig):
    try:
        if cfg.problem == "hyperclean":
            return HyperClean(cfg.dataset, cfg.corrupt, cfg.n_train, cfg.n_val, cfg.model, cfg.mu, cfg.seed, cfg.hidden)
        if cfg.problem == "l2reg":
            return L2Reg(cfg.dataset, cfg.n_train, cfg.n_val, cfg.per_weight, cfg.seed, cfg.init_log_l2, cfg.l2_floor)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    D = torch.float64
    p = Quadratic(seed=cfg.seed) if cfg.problem == "quadratic" else NonUnique()
    dx, dy = (p.dx, p.dy) if cfg.problem == "quadratic" else (1, 2)
    p.x0, p.y0 = (lambda: torch.zeros(dx, dtype=D)), (lambda: torch.zeros(dy, dtype=D))
    return p


def _evaluate(prob, x, y) -> dict:
    if hasattr(prob, "evaluate"):
        return prob.evaluate(x, y)
    if isinstance(prob, NonUnique):
        xs, ys = prob.solution()
        return {"x_err": float((x - xs).abs().max()), "y_err": float((y - ys).norm()),
                "value_gap": abs(prob.value(x, y) - prob.optimal_value())}
    return {"x_err": float((x - prob.x_opt()).norm() / prob.x_opt().norm())}


def _train_only(prob, cfg):
    """Lower level only (x fixed at x0), up to the budget: the no-hyperparameter-learning baseline."""
    prob.calls.clear()
    lr = cfg.hp.get("inner_lr", 0.1)
    x = prob.x0()
    y = inner_gd(prob, x, prob.y0(), cfg.budget, lr)
    return {"x": x, "y": y, "outer_iters": 0, "calls": cfg.budget, "grad_calls": cfg.budget, "hvp_calls": 0,
            "time_s": 0.0, "inner_residual": prob.inner_residual(x, y), "inner_residual_max": 0.0, "curve": []}


class _TrueObjective:
    """Monitor: F(x) = f(x, y*(x)) after each outer iteration, y* by accelerated GD to ||y - y*||
    <= 1e-9 (warm-started from the last one). Counts rises above 1e-9 (what MAID's line search
    rules out when its error bound holds)."""

    def __init__(self, prob):
        self.prob, self.y, self.F, self.increases, self.values = prob, None, None, 0, []

    def __call__(self, st):
        x = st["x"]
        if not torch.isfinite(x).all():
            return
        self.y, _, _ = inexact.inner_agd(self.prob, x, st["y"] if self.y is None else self.y, 1e-9)
        with torch.no_grad():
            F = float(self.prob.f(x, self.y))
        if self.F is not None and F > self.F + 1e-9:
            self.increases += 1
        self.F = F
        self.values.append(F)


def run_algorithm(cfg: BilevelConfig, ctx) -> dict:
    keys = sorted(cfg.grid)
    combos = list(itertools.product(*[cfg.grid[k] for k in keys])) or [()]
    st = {"best": None, "best_obj": math.inf, "chosen": {}, "failed": []}
    prob = make_problem(cfg)  # stateless apart from its call counter, which every run resets
    for i in ctx.steps(len(combos), {"search": st}):  # one step per grid point: a resume skips those done
        vals = combos[i - 1]
        hp = {**cfg.hp, **dict(zip(keys, vals))}
        t0 = time.perf_counter()
        try:
            if cfg.algo == "none":
                r = _train_only(prob, cfg)
            else:
                every = max(1, cfg.budget // cfg.curve_points) if cfg.curve_points else 0
                mon = _TrueObjective(prob) if cfg.track_true else None
                r = run_algo(prob, cfg.algo, cfg.budget, hp, max_outer=cfg.max_outer, record_every=every, monitor=mon,
                             hard_budget=cfg.hard_budget)
                if mon is not None:
                    if mon.F is None:  # no outer iteration completed: F at the returned point
                        mon({"x": r["x"], "y": r["y"]})
                    r.update(true_objective=mon.F if mon.F is not None else math.nan,
                             true_increases=float(mon.increases))
        except BilevelError as e:  # a failed trial is counted and printed, the grid goes on
            st["failed"].append(f"{dict(zip(keys, vals))}: {str(e).splitlines()[0][:160]}")
            continue
        except TypeError as e:
            raise ConfigError(f"hp for {cfg.algo}: {e}") from None
        r["time_s"] = time.perf_counter() - t0
        with torch.no_grad():
            obj = float(prob.f(r["x"], r["y"]))
        ctx.log(i, upper_objective=obj if math.isfinite(obj) else 1e9, calls=float(r["calls"]),
                **{f"hp_{k}": float(v) for k, v in zip(keys, vals)})
        if math.isfinite(obj) and obj < st["best_obj"]:
            st.update(best=r, best_obj=obj, chosen=dict(zip(keys, vals)))
    best, best_obj, chosen, failed = st["best"], st["best_obj"], st["chosen"], st["failed"]
    if best is None:
        raise ConfigError(f"{cfg.algo}: every grid point diverged or failed; widen the grid. " + "; ".join(failed[:3]))
    out = {"upper_objective": best_obj, "calls": float(best["calls"]), "hvp_calls": float(best["hvp_calls"]),
           "outer_iters": float(best["outer_iters"]), "time_s": best["time_s"],
           "inner_residual": float(best["inner_residual"]), "inner_residual_max": float(best["inner_residual_max"]),
           "failed_trials": float(len(failed)),
           **{k: best[k] for k in ("true_objective", "true_increases") if k in best}, **_evaluate(prob, best["x"], best["y"]), **{f"hp_{k}": float(v) for k, v in chosen.items()}}
    for j, (calls, f, res) in enumerate(best["curve"]):  # x = the nominal call count, shared by seeds
        ctx.log((j + 1) * (cfg.budget // cfg.curve_points), curve_upper_objective=f, curve_inner_residual=res,
                curve_calls=float(calls))
    return out


def run_hypergrad(cfg: BilevelConfig, ctx) -> dict:
    ctx.no_checkpoint("one hypergradient against its reference: seconds")
    prob = make_problem(cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    x = prob.x0() + cfg.x_scale * torch.randn(prob.dx, generator=g, dtype=torch.float64)
    y0 = prob.y0()
    # reference: inner problem solved to machine precision, dense linear solve
    y_star = inner_gd(prob, x, y0, 100_000, cfg.inner_lr, tol=1e-12)
    exact = implicit(prob, x, y_star, solver="dense").grad
    prob.calls.clear()
    with saved_bytes() as mem:
        t0 = time.perf_counter()
        if cfg.method == "unrolled":
            h = unrolled(prob, x, y0, cfg.inner_steps, cfg.inner_lr)
            hg, res = h.grad, h.inner_residual
        else:
            y = inner_gd(prob, x, y0, cfg.inner_steps, cfg.inner_lr)
            if cfg.method == "custom_root":
                def F(yy, xx):
                    return torch.autograd.grad(prob.g(xx, yy), yy, create_graph=True)[0]
                root = custom_root(F, solve="cg", iters=cfg.terms, tol=1e-14)(lambda y_, x_: y)
                x_ = x.clone().requires_grad_()
                with torch.enable_grad():
                    prob.f(x_, root(y, x_)).backward()
                hg, res = x_.grad, root.info["optimality"]
            else:
                solver = "cg" if cfg.method == "implicit_cg" else "neumann"
                kw = dict(iters=cfg.terms, tol=1e-14) if solver == "cg" else dict(terms=cfg.terms, alpha=cfg.inner_lr)
                h = implicit(prob, x, y, solver=solver, **kw)
                hg, res = h.grad, h.inner_residual
        dt = time.perf_counter() - t0
    err = float((hg - exact).norm() / exact.norm())
    cos = float(hg @ exact / (hg.norm() * exact.norm() + 1e-300))
    out = {"rel_err": err, "log10_rel_err": math.log10(max(err, 1e-16)), "cosine": cos,
           "time_ms": dt * 1e3, "saved_kb": mem["bytes"] / 1024, "inner_residual": res,
           "calls": float(sum(prob.calls.values()))}
    ctx.log(cfg.inner_steps, **out)
    return out


def run(cfg: BilevelConfig, ctx) -> dict:
    return run_hypergrad(cfg, ctx) if cfg.study == "hypergrad" else run_algorithm(cfg, ctx)
