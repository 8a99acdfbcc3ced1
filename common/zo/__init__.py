"""Zeroth-order optimization: seeded perturbations, gradient estimators behind one interface,
ZO optimizers that take a loss closure, parameter masks, and memory measured by the allocator.

- perturb.py: `ParamSpace` (the parameters an estimator may move, with optional masks) and the
  seeded direction z(seed) regenerated on demand (MeZO's trick: no stored direction, no copy of the
  parameters); `perturbed(...)` evaluates f(θ + s z) without touching θ, `add_(...)` moves θ in place.
- estimators.py: two-point random-vector estimates (Gaussian / sphere, one- or two-sided, q queries),
  coordinate-wise estimates (CGE), forward-mode gradients (`torch.func.jvp`).
- optim.py: `ZOOptimizer` (ZO-SGD = MeZO, -Sign, -MMT, -Cons, ZO-Adam, forward-grad) with `step(closure)`.
- masks.py: magnitude (small |w|, Sparse MeZO), random and sensitivity (|grad|) masks.
- memory.py: peak tensor memory of one step from PyTorch's allocator events (CPU) or
  `torch.cuda.max_memory_allocated`, and peak RSS of a fresh process.
"""
from optrepro.zo.estimators import Estimate, cge, forward_grad, rge  # noqa: F401
from optrepro.zo.masks import magnitude_masks, random_masks, sensitivity_masks  # noqa: F401
from optrepro.zo.optim import METHODS, ZOOptimizer  # noqa: F401
from optrepro.zo.perturb import ParamSpace, add_, perturbed  # noqa: F401
