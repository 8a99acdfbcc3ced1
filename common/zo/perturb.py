"""Seeded random directions over a set of parameters, regenerated on demand.

A direction z is never stored: z_i (the part for parameter i) is drawn from a generator seeded with
(seed, i), so the same seed gives the same z bit for bit whenever it is needed again (to perturb, to
undo, to update). This is MeZO's memory trick (Malladi et al. 2023, Alg. 1); at any time at most one
parameter's z_i exists.

Two ways to evaluate f(θ + s z):
- `perturbed(model, space, seed, s)` (default): forward pre-hooks hand each module W + s z_W for the
  length of its own forward and put W back after it. θ is never written, so it is restored bit for
  bit by construction; the extra memory is one module's parameters.
- `add_(space, seed, s)` then `add_(space, seed, -s)`: MeZO's literal in-place perturbation. In
  floating point θ + s z - s z is not θ everywhere (rounding), so this path drifts by a few ulps per
  step; `tests/reference/test_zo.py` measures by how much.

Masks restrict z to a subset of entries: a bool tensor per parameter, or a magnitude threshold τ
(z is zero where |w| > τ) evaluated on the fly from the current weights, as Sparse MeZO does so
that no mask is stored.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from optrepro.errors import ConfigError

DISTS = ("gaussian", "sphere")


class ParamSpace:
    """The parameters an estimator moves, each with an optional mask.

    masks: None, or one entry per parameter: None (every entry), a bool tensor of the parameter's
    shape, or a float τ (entries with |w| <= τ, re-evaluated each time z is drawn)."""

    def __init__(self, params, masks=None, dist: str = "gaussian"):
        seen, ps = set(), []
        for p in params:
            if id(p) not in seen and p.requires_grad:
                seen.add(id(p))
                ps.append(p)
        if not ps:
            raise ConfigError("no trainable parameter to optimize (every parameter has requires_grad=False)")
        if dist not in DISTS:
            raise ConfigError(f"perturbation distribution '{dist}' unknown; valid: {', '.join(DISTS)}")
        masks = list(masks) if masks is not None else [None] * len(ps)
        if len(masks) != len(ps):
            raise ConfigError(f"{len(masks)} masks for {len(ps)} parameters")
        for p, m in zip(ps, masks):
            if isinstance(m, torch.Tensor) and (m.shape != p.shape or m.dtype != torch.bool):
                raise ConfigError(f"a mask must be a bool tensor of its parameter's shape {tuple(p.shape)}, "
                                  f"got {m.dtype} {tuple(m.shape)}")
        self.params, self.masks, self.dist = ps, masks, dist
        self.index = {id(p): i for i, p in enumerate(ps)}
        self._norms: dict = {}
        if self.selected() == 0:
            raise ConfigError("the mask selects no parameter: every entry of every parameter is masked out")

    def mask(self, i: int):
        """Bool mask of parameter i now (None: all entries)."""
        m = self.masks[i]
        if m is None or isinstance(m, torch.Tensor):
            return m
        return self.params[i].detach().abs() <= m

    def selected(self) -> int:
        """Number of entries a direction moves now (d in the estimators' formulas)."""
        n = 0
        for i, p in enumerate(self.params):
            m = self.mask(i)
            n += p.numel() if m is None else int(m.sum())
        return n

    def numel(self) -> int:
        return sum(p.numel() for p in self.params)

    def _raw(self, i: int, seed: int) -> torch.Tensor:
        p = self.params[i]
        gen = torch.Generator(device=p.device).manual_seed((seed * 1_000_003 + i) % (2 ** 63))
        z = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
        m = self.mask(i)
        return z if m is None else z.mul_(m)

    def _sphere_factor(self, seed: int) -> float:
        """sqrt(d) / ||g|| so that z = g sqrt(d)/||g|| lies on the sphere of radius sqrt(d) (E z z^T = I)."""
        if seed not in self._norms:
            sq = sum(float(self._raw(i, seed).double().square().sum()) for i in range(len(self.params)))
            if len(self._norms) > 64:
                self._norms.clear()
            self._norms[seed] = (self.selected() / sq) ** 0.5
        return self._norms[seed]

    def z(self, i: int, seed: int) -> torch.Tensor:
        """The part of direction `seed` for parameter i (zero outside the mask)."""
        z = self._raw(i, seed)
        return z.mul_(self._sphere_factor(seed)) if self.dist == "sphere" else z

    def dense(self, seed: int) -> list:
        """The whole direction as tensors (tests and optimizers with dense state only)."""
        return [self.z(i, seed) for i in range(len(self.params))]


@torch.no_grad()
def add_(space: ParamSpace, seed: int, scale: float) -> None:
    """θ += scale · z(seed), in place, one parameter's z at a time."""
    for i, p in enumerate(space.params):
        p.add_(space.z(i, seed), alpha=scale)


@contextmanager
def perturbed(model: nn.Module, space: ParamSpace, seed: int, scale: float):
    """Within the block, every forward of `model` sees θ + scale · z(seed); θ itself is never written.

    Each module that owns parameters of `space` swaps in W + scale z_W just before its forward and
    swaps W back right after, so one module's perturbed weights exist at a time. Tied weights (the
    same Parameter in two modules) get the same z in both places."""
    handles, used = [], set()

    def pre(mod, args, local):
        saved = []
        for name, i in local:
            used.add(i)
            w = mod._parameters[name]
            saved.append((name, w))
            mod._parameters[name] = w.detach() + scale * space.z(i, seed)
        mod._zo_saved = saved

    def post(mod, args, out):
        for name, w in mod._zo_saved:
            mod._parameters[name] = w
        del mod._zo_saved

    owned = set()
    for mod in model.modules():
        local = [(n, space.index[id(p)]) for n, p in mod.named_parameters(recurse=False) if id(p) in space.index]
        if local:
            owned.update(i for _, i in local)
            handles.append(mod.register_forward_pre_hook(lambda m, a, local=local: pre(m, a, local)))
            handles.append(mod.register_forward_hook(post))
    if len(owned) != len(space.params):
        for h in handles:
            h.remove()
        raise ConfigError("perturbed(): some parameters of the space do not belong to the model")
    try:
        with torch.no_grad():
            yield
        if len(used) != len(space.params):
            missing = [i for i in range(len(space.params)) if i not in used]
            raise ConfigError(f"perturbed(): {len(missing)} parameter(s) were never used inside their own module's "
                              "forward (read directly by a parent module?); the hooks cannot perturb them. "
                              "Use the in-place perturbation (inplace=True) for this model.")
    finally:
        for h in handles:
            h.remove()
        for mod in model.modules():  # a forward that raised leaves its weights swapped: put them back
            if hasattr(mod, "_zo_saved"):
                post(mod, None, None)
