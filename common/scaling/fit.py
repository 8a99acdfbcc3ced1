"""Fitting scaling laws the way the papers do, with the papers' alternatives as options.

- `fit_chinchilla`: Hoffmann et al.'s approach 3: minimize sum Huber_delta(LSE(a - alpha log N,
  b - beta log D, e) - log L) with L-BFGS from a grid of starts (A = e^a, B = e^b, E = e^e),
  keep the lowest objective. `loss="mse"` and other deltas/grids are the alternatives the
  (Mis)Fitting survey studies. Returns every start's result too, so the spread is visible.
- `fit_power_law`: log y = a log x + log k by least squares (or Huber in log space).
- `isoflop_minima`: approach 2: per compute budget, a parabola in log N through the points
  around the lowest loss; its vertex is N*(C).
- `bootstrap`: resample rows with replacement and refit; percentile intervals.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp


class FitError(ValueError):
    """The data cannot support the fit asked for (too few points, non-positive values)."""


def huber(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _need(n_points: int, n_params: int, what: str):
    if n_points <= n_params:
        raise FitError(f"{what}: {n_points} points for {n_params} parameters; need more points than parameters")


def _positive(name, x):
    x = np.asarray(x, dtype=float)
    bad = np.flatnonzero(~(x > 0) | ~np.isfinite(x))
    if bad.size:
        raise FitError(f"{name} must be positive and finite; row {int(bad[0])} has {x[bad[0]]}")
    return x


@dataclass
class ChinchillaFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    starts: list = field(default_factory=list)
    """(objective, params) of every start, best first."""

    @property
    def a_exponent(self) -> float:
        """N* ~ C^a with a = beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    def params(self) -> dict:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}

    def x(self):
        """The fit in the optimizer's coordinates (a, b, e, alpha, beta), to warm-start refits."""
        return np.log([self.A, self.B, self.E]).tolist() + [self.alpha, self.beta]


DEFAULT_GRID = {"a": np.arange(0, 30, 5.0), "b": np.arange(0, 30, 5.0), "e": np.arange(-1, 1.5, 0.5),
                "alpha": np.arange(0, 2.5, 0.5), "beta": np.arange(0, 2.5, 0.5)}
"""Hoffmann et al.'s initialisation grid (their Sec. D.2)."""


def fit_chinchilla(N, D, L, loss: str = "huber", delta: float = 1e-3, grid: dict | None = None,
                   keep_starts: bool = False, top_k: int | None = None, x0=None, space: str = "log") -> ChinchillaFit:
    """top_k: run L-BFGS only from the k grid points with the lowest initial objective (the
    full Hoffmann grid is 4,500 starts, ~40 s on 245 points). x0: one start (a, b, e, alpha,
    beta), e.g. the full-data fit when bootstrapping. space: residuals of log L ('log', Hoffmann)
    or of L itself ('linear', an alternative the survey lists)."""
    N, D, L = _positive("N", N), _positive("D", D), _positive("loss", L)
    _need(len(L), 5, "chinchilla fit")
    if loss not in ("huber", "mse"):
        raise ValueError(f"loss '{loss}' unknown; valid: huber, mse")
    if space not in ("log", "linear"):
        raise ValueError(f"space '{space}' unknown; valid: log, linear")
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    g = DEFAULT_GRID if grid is None else grid

    def obj(p):
        with np.errstate(over="ignore", invalid="ignore"):
            f, g = _obj(p)
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            return 1e300, np.zeros(5)
        return f, g

    def _obj(p):
        a, b, e, al, be = p
        terms = np.stack([a - al * lN, b - be * lD, np.full_like(lN, e)])
        lse = logsumexp(terms, axis=0)
        if space == "log":
            r, dr = lse - lL, 1.0
        else:  # r = prediction - L; dr/d(lse) = prediction
            r = np.exp(lse) - L
            dr = np.exp(lse)
        if loss == "mse":
            return 0.5 * np.sum(r * r), _grad(terms, r * dr, lN, lD)
        w = np.clip(r, -delta, delta)  # d huber / dr
        return float(np.sum(huber(r, delta))), _grad(terms, w * dr, lN, lD)

    starts = [np.asarray(x0, dtype=float)] if x0 is not None else \
        [np.array(p, dtype=float) for p in itertools.product(g["a"], g["b"], g["e"], g["alpha"], g["beta"])]
    if top_k is not None and len(starts) > top_k:
        starts = sorted(starts, key=lambda p: obj(p)[0])[:top_k]
    results = []
    for start in starts:
        if obj(start)[0] >= 1e300:
            continue
        res = minimize(obj, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 2000})
        results.append((float(res.fun), res.x))
    if not results:
        raise FitError("chinchilla fit: every start overflows; give starts closer to the data's scale")
    results.sort(key=lambda t: t[0])
    f, (a, b, e, al, be) = results[0]
    return ChinchillaFit(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(al),
                         beta=float(be), objective=f, starts=results if keep_starts else [])


def chinchilla_objective(N, D, L, E, A, B, alpha, beta, loss: str = "huber", delta: float = 1e-3,
                         space: str = "log") -> float:
    """The fitting objective at given parameters (to compare published fits with ours)."""
    pred = E + A / np.asarray(N, float) ** alpha + B / np.asarray(D, float) ** beta
    r = np.log(pred) - np.log(L) if space == "log" else pred - np.asarray(L, float)
    return float(np.sum(huber(r, delta))) if loss == "huber" else float(0.5 * np.sum(r * r))


def _grad(terms, w, lN, lD):
    """Gradient of sum phi(r) given w = phi'(r) dr/dLSE, where LSE = logsumexp(terms)."""
    sm = np.exp(terms - logsumexp(terms, axis=0))  # softmax weights of the three terms
    return np.array([np.sum(w * sm[0]), np.sum(w * sm[1]), np.sum(w * sm[2]),
                     np.sum(w * sm[0] * -lN), np.sum(w * sm[1] * -lD)])


def fit_power_law(x, y, loss: str = "ols", delta: float = 0.1):
    """(a, k) with y ~ k x^a, fitted in log space."""
    x, y = _positive("x", x), _positive("y", y)
    _need(len(x), 2, "power-law fit")
    lx, ly = np.log(x), np.log(y)
    a, b = np.polyfit(lx, ly, 1)
    if loss == "huber":
        res = minimize(lambda p: np.sum(huber(ly - p[0] * lx - p[1], delta)), np.array([a, b]), method="L-BFGS-B")
        a, b = res.x
    elif loss != "ols":
        raise ValueError(f"loss '{loss}' unknown; valid: ols, huber")
    return float(a), float(np.exp(b))


def isoflop_minima(C, N, L, window: int = 2, min_points: int = 3, edge: str = "skip", inside: bool = False):
    """Approach 2. For each distinct budget C: sort its runs by N, take the lowest-loss run and
    `window` neighbours on each side, fit L = q2 (log N)^2 + q1 log N + q0, return the vertex.
    Budgets with fewer than `min_points` runs or a non-convex parabola are skipped (listed), and
    with `inside` so are those whose vertex lies outside the runs fitted (an extrapolation).
    When the lowest loss is at the smallest or largest model, `edge` = skip leaves the budget out
    if that leaves fewer than `min_points` runs; `extend` takes 2 x window + 1 runs from that end
    instead (the vertex is then an extrapolation beyond the models run)."""
    if edge not in ("skip", "extend"):
        raise ValueError(f"edge '{edge}' unknown; valid: skip, extend")
    C, N, L = np.asarray(C, dtype=float), _positive("N", N), np.asarray(L, dtype=float)
    out_c, out_n, out_l, skipped = [], [], [], []
    for c in np.unique(C):
        m = C == c
        x, y = np.log(N[m]), L[m]
        o = np.argsort(x)
        x, y = x[o], y[o]
        i = int(np.argmin(y))
        lo, hi = max(0, i - window), min(len(y), i + window + 1)
        if edge == "extend" and hi - lo < 2 * window + 1:
            lo, hi = (0, min(len(y), 2 * window + 1)) if lo == 0 else (max(0, len(y) - 2 * window - 1), len(y))
        if hi - lo < min_points:
            skipped.append(float(c))
            continue
        q = np.polyfit(x[lo:hi], y[lo:hi], 2)
        if q[0] <= 0:
            skipped.append(float(c))
            continue
        xs = -q[1] / (2 * q[0])
        if inside and not x[lo] <= xs <= x[hi - 1]:
            skipped.append(float(c))  # the vertex is an extrapolation beyond the runs fitted
            continue
        out_c.append(float(c))
        out_n.append(float(np.exp(xs)))
        out_l.append(float(np.polyval(q, xs)))
    return np.array(out_c), np.array(out_n), np.array(out_l), skipped


def bootstrap(fit_fn, n_rows: int, n: int = 1000, seed: int = 0, q=(5, 95)):
    """fit_fn(idx) -> dict of floats for a resample `idx` of range(n_rows). Returns
    {key: (p_low, p_high)} and the array of all resample results per key."""
    rng = np.random.default_rng(seed)
    draws = [fit_fn(rng.integers(0, n_rows, n_rows)) for _ in range(n)]
    keys = draws[0].keys()
    vals = {k: np.array([d[k] for d in draws]) for k in keys}
    return {k: (float(np.percentile(v, q[0])), float(np.percentile(v, q[1]))) for k, v in vals.items()}, vals


def compute_optimal_exponent(flops, n, loss, window: int = 2, n_boot: int = 1000, seed: int = 0,
                             edge: str = "skip", inside: bool = False, min_points: int = 3) -> dict:
    """Chinchilla's approach 2 end to end: IsoFLOP minima (isoflop_minima), then the exponent a of
    N*(C) = k C^a, its bootstrap 5-95% interval (resampling the budgets' optima), the number of
    budgets used and skipped, and the minima themselves ("minima": (C, N*, L*)). Raises FitError
    when fewer than 3 budgets have a minimum."""
    cs, ns, ls, skipped = isoflop_minima(flops, n, loss, window=window, min_points=min_points, edge=edge, inside=inside)
    if len(cs) < 3:
        raise FitError(f"only {len(cs)} budget(s) have an IsoFLOP minimum inside the models run (no minimum for "
                       f"{', '.join(f'{c:.0e}' for c in skipped)}): the optimum lies outside the model range")
    a, k = fit_power_law(cs, ns)
    ci, _ = bootstrap(lambda i: {"a": np.polyfit(np.log(cs[i]), np.log(ns[i]), 1)[0]
                                 if len(np.unique(cs[i])) > 1 else a}, len(cs), n=n_boot, seed=seed)
    return {"n_exponent": a, "n_coef": k, "n_exponent_p05": ci["a"][0], "n_exponent_p95": ci["a"][1],
            "budgets": float(len(cs)), "budgets_skipped": float(len(skipped)), "minima": (cs, ns, ls)}


def seed_noise_std(loss, noise_low: float, noise_high: float, log_low: float = 3.0, log_high: float = 7.0):
    """The authors' per-point loss noise (Porian et al. 2024, analysis.get_noise_for_loss): noise_low
    where log(loss) <= log_low, noise_high where log(loss) >= log_high, log-linear in between."""
    ll = np.log(np.asarray(loss, dtype=float))
    return np.exp(np.interp(ll, [log_low, log_high], [np.log(noise_low), np.log(noise_high)]))


def isoflop_minima_interp(C, N, L, noise: dict, n_boot: int = 1000, seed: int = 0, multiplier: int = 25,
                          min_std_factor: float = 0.33, min_points: int = 3):
    """Approach 2 as Porian et al. fit it (their analysis.interp_flop, re-derived): for each budget
    with >= min_points runs, log-loss is interpolated in log N by an Akima spline on a geometric grid
    of (runs - 1) x `multiplier` points; N* is the grid argmin. `n_boot` copies with Gaussian noise
    (seed_noise_std(loss, **noise)) added to the losses give N*_b; argmins at the grid's ends are
    invalid, and a budget whose noiseless argmin is at an end, or with fewer than half its copies
    valid, is skipped. Per budget: N* = median of the valid N*_b; std of log N*_b (floored at
    min_std_factor of one run spacing, inflated by n_boot / valid). Returns (C, N*, std, samples,
    skipped) with samples[i] the valid N*_b of budget i."""
    from scipy.interpolate import Akima1DInterpolator
    C, N, L = np.asarray(C, dtype=float), _positive("N", N), _positive("L", L)
    rng = np.random.default_rng(seed)
    out_c, out_n, out_s, samples, skipped = [], [], [], [], []
    for c in np.unique(C):
        m = C == c
        o = np.argsort(N[m])
        n, loss = N[m][o], L[m][o]
        if len(n) < min_points or len(np.unique(n)) < len(n):
            skipped.append(float(c))
            continue
        k = (len(n) - 1) * multiplier
        grid = np.geomspace(n.min(), n.max(), k)
        lg = np.log(grid)

        def argmin(losses):
            return int(np.argmin(Akima1DInterpolator(np.log(n), np.log(losses))(lg)))
        i0 = argmin(loss)
        noisy = loss + seed_noise_std(loss, **noise) * rng.standard_normal((n_boot, len(loss)))
        idx = np.array([argmin(row) for row in noisy])
        ok = (idx != 0) & (idx != k - 1)
        if i0 in (0, k - 1) or ok.sum() < n_boot // 2:
            skipped.append(float(c))
            continue
        stars = grid[idx[ok]]
        floor = min_std_factor * multiplier * np.log(grid[1] / grid[0])
        out_c.append(float(c))
        out_n.append(float(np.median(stars)))
        out_s.append(max(float(np.std(np.log(stars))), floor) * n_boot / ok.sum())
        samples.append(stars)
    return np.array(out_c), np.array(out_n), np.array(out_s), samples, skipped


def compute_optimal_exponent_interp(flops, n, loss, noise: dict, n_boot: int = 1000, seed: int = 0,
                                    q=(5, 95)) -> dict:
    """The authors' end-to-end procedure: isoflop_minima_interp, then log N* = a log C + b by
    least squares on the medians; the q-interval of a over fits to the bootstrap copies (copy i of
    every budget together, as many copies as the budget with the fewest valid ones)."""
    cs, ns, std, samples, skipped = isoflop_minima_interp(flops, n, loss, noise, n_boot, seed)
    if len(cs) < 3:
        raise FitError(f"only {len(cs)} budget(s) have an interpolated IsoFLOP minimum inside the models run")
    a, k = fit_power_law(cs, ns)
    m = min(len(s) for s in samples)
    lc = np.log(cs)
    boots = [np.polyfit(lc, np.log([s[i] for s in samples]), 1)[0] for i in range(m)]
    return {"n_exponent": a, "n_coef": k, "n_exponent_p05": float(np.percentile(boots, q[0])),
            "n_exponent_p95": float(np.percentile(boots, q[1])), "budgets": float(len(cs)),
            "budgets_skipped": float(len(skipped)), "minima": (cs, ns, std)}
