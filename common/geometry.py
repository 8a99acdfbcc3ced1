r"""Riemannian manifolds for optimizers that step on them: the Euclidean space, the Poincaré ball
and the unit sphere. A tensor of shape (..., d) is a batch of points, one per row, so an embedding
table is a product of manifolds, one per row (the last dimension is the manifold's).

Each manifold gives what a first-order Riemannian method needs:

    egrad2rgrad(x, g)     the Riemannian gradient from the Euclidean one
    inner(x, u, v)        the metric at x, one value per row (keepdim)
    expmap(x, u)          the point reached along the geodesic from x with initial velocity u
    transp(x, y, v)       parallel transport of v from T_x to T_y along the geodesic joining them
    dist(x, y)            the geodesic distance, one value per row
    projx(x)              the nearest point of the manifold (guards against rounding)

Poincaré ball of curvature -c (c > 0), {x : c|x|^2 < 1} with metric lambda_x^2 <u, v>,
lambda_x = 2 / (1 - c|x|^2) (Ganea, Bécigneul & Hofmann 2018, "Hyperbolic Neural Networks"):

    x (+) y      = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2 |x|^2 |y|^2)
    expmap_x(u)  = x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c) |u|)
    dist(x, y)   = 2 / sqrt(c) artanh(sqrt(c) |(-x) (+) y|)
    transp_{x->y}(v) = gyr[y, -x] v * lambda_x / lambda_y
    gyr[u, v] w  = (-(u (+) v)) (+) (u (+) (v (+) w))         (computed in closed form, below)
    egrad2rgrad  = g / lambda_x^2

Unit sphere {x : |x| = 1} with the induced metric:

    egrad2rgrad  = g - <x, g> x
    expmap_x(u)  = cos(|u|) x + sin(|u|) u / |u|
    transp(v)    = v + (cos|u| - 1) <e, v> e - sin|u| <e, v> x,  e = u / |u|, y = expmap_x(u)
    dist(x, y)   = arccos <x, y>

Points on the ball are kept at most 1 - eps from its boundary (eps 4e-3 in float32, 1e-5 in
float64, as geoopt does); spheres are renormalized after each step."""
from __future__ import annotations

import math

import torch

_BALL_EPS = {torch.float32: 4e-3, torch.float64: 1e-5}
_MIN_NORM = 1e-15


def _norm(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)


def _dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x * y).sum(-1, keepdim=True)


class Manifold:
    name = "manifold"

    def egrad2rgrad(self, x, g):
        raise NotImplementedError

    def inner(self, x, u, v=None):
        raise NotImplementedError

    def expmap(self, x, u):
        raise NotImplementedError

    def transp(self, x, y, v):
        raise NotImplementedError

    def dist(self, x, y):
        raise NotImplementedError

    def projx(self, x):
        return x

    def norm(self, x, u):
        return self.inner(x, u).clamp_min(0).sqrt()

    def __repr__(self):
        return f"{type(self).__name__}()"


class Euclidean(Manifold):
    """R^d with <u, v>: every Riemannian method reduces to its Euclidean original on it."""
    name = "euclidean"

    def egrad2rgrad(self, x, g):
        return g

    def inner(self, x, u, v=None):
        return _dot(u, u if v is None else v)

    def expmap(self, x, u):
        return x + u

    def transp(self, x, y, v):
        return v

    def dist(self, x, y):
        return (x - y).norm(dim=-1, keepdim=True)


class PoincareBall(Manifold):
    name = "poincare"

    def __init__(self, c: float = 1.0):
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
            raise ValueError(f"the Poincaré ball's c (curvature -c) must be a finite number > 0, got {c!r}")
        self.c = float(c)

    def __repr__(self):
        return f"PoincareBall(c={self.c})"

    def lambda_x(self, x):
        return 2 / (1 - self.c * _dot(x, x)).clamp_min(_MIN_NORM)

    def mobius_add(self, x, y):
        c = self.c
        xy, x2, y2 = _dot(x, y), _dot(x, x), _dot(y, y)
        num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
        return num / (1 + 2 * c * xy + c ** 2 * x2 * y2).clamp_min(_MIN_NORM)

    def gyration(self, u, v, w):
        """gyr[u, v] w, Ungar's closed form of (-(u (+) v)) (+) (u (+) (v (+) w)) for curvature -c."""
        c = self.c
        uw, vw, uv = _dot(u, w), _dot(v, w), _dot(u, v)
        u2, v2 = _dot(u, u), _dot(v, v)
        a = -c ** 2 * uw * v2 + c * vw + 2 * c ** 2 * uv * vw
        b = -c ** 2 * vw * u2 - c * uw
        d = 1 + 2 * c * uv + c ** 2 * u2 * v2
        return w + 2 * (a * u + b * v) / d.clamp_min(_MIN_NORM)

    def projx(self, x):
        eps = _BALL_EPS.get(x.dtype, 4e-3)
        top = (1 - eps) / math.sqrt(self.c)
        n = _norm(x)
        return torch.where(n > top, x / n * top, x)

    def egrad2rgrad(self, x, g):
        return g / self.lambda_x(x) ** 2

    def inner(self, x, u, v=None):
        return self.lambda_x(x) ** 2 * _dot(u, u if v is None else v)

    def expmap(self, x, u):
        sc = math.sqrt(self.c)
        un = _norm(u)
        second = torch.tanh(sc * self.lambda_x(x) * un / 2) * u / (sc * un)
        return self.projx(self.mobius_add(x, second))

    def transp(self, x, y, v):
        return self.gyration(y, -x, v) * self.lambda_x(x) / self.lambda_x(y)

    def dist(self, x, y):
        sc = math.sqrt(self.c)
        z = (sc * self.mobius_add(-x, y).norm(dim=-1, keepdim=True)).clamp(max=1 - 1e-7)
        return 2 / sc * torch.atanh(z)


class Sphere(Manifold):
    name = "sphere"

    def projx(self, x):
        return x / _norm(x)

    def egrad2rgrad(self, x, g):
        return g - _dot(x, g) * x

    def inner(self, x, u, v=None):
        return _dot(u, u if v is None else v)

    def expmap(self, x, u):
        un = u.norm(dim=-1, keepdim=True)
        y = torch.cos(un) * x + torch.sin(un) * u / un.clamp_min(_MIN_NORM)
        return self.projx(y)

    def transp(self, x, y, v):
        """Along the geodesic from x to y (the one expmap followed: y = expmap_x(u), u = logmap_x(y))."""
        u = self.logmap(x, y)
        un = u.norm(dim=-1, keepdim=True)
        e = u / un.clamp_min(_MIN_NORM)
        ev = _dot(e, v)
        return v + (torch.cos(un) - 1) * ev * e - torch.sin(un) * ev * x

    def logmap(self, x, y):
        cos = _dot(x, y).clamp(-1, 1)
        w = y - cos * x
        wn = w.norm(dim=-1, keepdim=True)
        return torch.where(wn > _MIN_NORM, torch.arccos(cos) * w / wn.clamp_min(_MIN_NORM), torch.zeros_like(w))

    def dist(self, x, y):
        return torch.arccos(_dot(x, y).clamp(-1, 1))


MANIFOLDS = {"euclidean": Euclidean, "poincare": PoincareBall, "sphere": Sphere}


def make_manifold(name: str, **kwargs) -> Manifold:
    if name not in MANIFOLDS:
        raise ValueError(f"unknown manifold {name!r}: one of {', '.join(MANIFOLDS)}")
    return MANIFOLDS[name](**kwargs)
