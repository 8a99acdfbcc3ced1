"""Forward processes x_t = α(t) x0 + σ(t) ε on t ∈ [0, 1] (t = 1 is noise) and the time grids the
samplers share.

- `vp`: the variance-preserving process of DDPM with the linear β schedule in continuous time,
  log ᾱ(t) = -(β0 t + (β1 - β0) t² / 2), α = √ᾱ, σ = √(1 - ᾱ) (β0 = 0.1, β1 = 20: Song et al. 2021's
  VP SDE, the continuous limit of DDPM's β_t from 1e-4 to 0.02 over 1000 steps).
- `flow`: the rectified-flow / conditional-OT path of flow matching, α = 1 - t, σ = t.

A model predicts ε (`eps`), the velocity dx_t/dt = α' x0 + σ' ε (`velocity`) or x0 (`x0`); `split`
turns any prediction into the pair (x0, ε) the samplers use, so one sampler serves every process and
parameterization. Grids are decreasing times t_0 > ... > t_n = 0 (n steps): `uniform` in t, `logsnr`
uniform in log(σ/α), `edm` (Karras et al. 2022's ρ = 7 spacing of σ/α), or a given list.
"""
from __future__ import annotations

import math

import torch

from optrepro.errors import ConfigError

PROCESSES = ("vp", "flow")
PARAMETERIZATIONS = ("eps", "velocity", "x0")
GRIDS = ("uniform", "logsnr", "edm", "custom")


class Process:
    def __init__(self, kind: str = "vp", beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        if kind not in PROCESSES:
            raise ConfigError(f"process '{kind}' unknown; valid: {', '.join(PROCESSES)}")
        self.kind, self.beta_min, self.beta_max, self.t_min = kind, beta_min, beta_max, t_min

    # -- coefficients (t: tensor)
    def log_abar(self, t):
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)

    def alpha(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return torch.exp(0.5 * self.log_abar(t)) if self.kind == "vp" else 1.0 - t

    def sigma(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return torch.sqrt(-torch.expm1(self.log_abar(t))) if self.kind == "vp" else t

    def dalpha(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "vp":
            return -0.5 * (self.beta_min + (self.beta_max - self.beta_min) * t) * self.alpha(t)
        return -torch.ones_like(t)

    def dsigma(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "vp":
            beta = self.beta_min + (self.beta_max - self.beta_min) * t
            return 0.5 * beta * self.alpha(t) ** 2 / self.sigma(t)
        return torch.ones_like(t)

    def noise_ratio(self, t):
        """σ(t) / α(t), EDM's σ (0 at t = 0, increasing)."""
        return self.sigma(t) / self.alpha(t)

    def t_range(self) -> tuple[float, float]:
        """(smallest, largest) time a model is trained and evaluated at."""
        return (self.t_min, 1.0) if self.kind == "vp" else (0.0, 1.0)

    # -- training pairs and prediction conversions (x, pred: [n, ...]; t: [n])
    def _b(self, c, like):
        return c.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def noisy(self, x0, eps, t):
        return self._b(self.alpha(t), x0) * x0 + self._b(self.sigma(t), x0) * eps

    def target(self, x0, eps, t, param: str):
        if param == "eps":
            return eps
        if param == "x0":
            return x0
        return self._b(self.dalpha(t), x0) * x0 + self._b(self.dsigma(t), x0) * eps

    def split(self, pred, x, t, param: str):
        """(x0, ε) implied by a prediction at state x, time t (t > 0 for `eps`)."""
        a, s = self._b(self.alpha(t), x), self._b(self.sigma(t), x)
        if param == "eps":
            return (x - s * pred) / a, pred
        if param == "x0":
            return pred, (x - a * pred) / s
        da, ds = self._b(self.dalpha(t), x), self._b(self.dsigma(t), x)
        det = ds * a - s * da  # x = a x0 + s ε, v = da x0 + ds ε
        return (ds * x - s * pred) / det, (a * pred - da * x) / det

    def join(self, x0, eps, x, t, param: str):
        """The prediction of type `param` with these (x0, ε): the inverse of `split`."""
        if param == "eps":
            return eps
        if param == "x0":
            return x0
        return self._b(self.dalpha(t), x) * x0 + self._b(self.dsigma(t), x) * eps

    # -- time grids
    def t_of_ratio(self, r: float) -> float:
        """The time with σ/α = r (bisection; the ratio is increasing in t)."""
        lo, hi = 0.0, 1.0
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if float(self.noise_ratio(mid)) < r:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def grid(self, kind: str, steps: int, times: list | None = None, rho: float = 7.0) -> torch.Tensor:
        """Decreasing float64 times t_0 > ... > t_steps = 0."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
        if kind == "custom":
            ts = [float(x) for x in (times or [])]
            if len(ts) != steps + 1 or ts[-1] != 0.0 or any(b >= a for a, b in zip(ts, ts[1:])) or ts[0] > 1:
                raise ConfigError(f"custom times must be {steps + 1} decreasing values in [0, 1] ending at 0, got {ts}")
            return torch.tensor(ts, dtype=torch.float64)
        lo, hi = self.t_range()
        if kind == "uniform":
            return torch.linspace(hi, 0.0, steps + 1, dtype=torch.float64)
        if kind not in ("logsnr", "edm"):
            raise ConfigError(f"grid '{kind}' unknown; valid: {', '.join(GRIDS)}")
        hi = min(hi, 1.0 - 1e-3) if self.kind == "flow" else hi  # flow's σ/α is infinite at t = 1
        lo = max(lo, 1e-3)
        rmax, rmin = float(self.noise_ratio(hi)), float(self.noise_ratio(lo))
        u = torch.linspace(0, 1, steps, dtype=torch.float64)
        if kind == "logsnr" or steps == 1:
            r = torch.exp(math.log(rmax) + u * (math.log(rmin) - math.log(rmax)))
        else:
            r = (rmax ** (1 / rho) + u * (rmin ** (1 / rho) - rmax ** (1 / rho))) ** rho
        ts = [hi] + [self.t_of_ratio(float(x)) for x in r[1:]] + [0.0]
        return torch.tensor(ts, dtype=torch.float64)
