"""AdamW with Subset-Norm step sizes and, optionally, Subspace-Momentum (Nguyen et al., 2024).

Subset-Norm (SN): the coordinates of a matrix are partitioned into subsets and every subset shares
one adaptive step size, from an EMA of the *sum* of its squared gradient entries (the squared norm
of the subset's gradient), so the second moment of an m x n matrix takes one number per subset
instead of m n:
- `subsets="rows"` (the paper's partition, the authors' adamw_sn.py): the slices along the smaller
  dimension, i.e. one value per row when m >= n, else one per column (max(m, n) values);
- `subsets=k` (an int; the authors' adamw_sng.py and pytorch-optimizer's AdamWSN): the flattened
  matrix cut into contiguous chunks of the largest divisor of m n not above k (k = -1: of sqrt(m n)).
Since a subset's squared norm sums ~|subset| squared entries, the effective step is smaller than
Adam's at the same learning rate: the authors advise ~10x Adam's rate.

Subspace-Momentum (SM, `rank > 0`): the first moment is kept only in a rank-r projection of the
gradient (common.lowrank: SVD basis refreshed every `update_proj_gap` steps, the moment reset at a
refresh as in the authors' default); the component of the gradient orthogonal to the subspace
passes without momentum: numerator = up(m) + (g - up(down(g))), divided by the SN denominator.

SN and SM apply to 2-D parameters (`sn: False` in a parameter group turns them off); vectors get
AdamW. Bias correction in the step size, decoupled weight decay after the update (p *= 1 - lr wd),
as pytorch-optimizer's AdamWSN (tests/reference/test_subset_norm.py checks equality step by step
with groups sn=True, and SM against its literal equations)."""
from __future__ import annotations

import functools
import math

import torch

from optrepro.lowrank import KINDS, basis, down, up
from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


def largest_divisor_at_most(n: int, k: int) -> int:
    """The largest divisor of n that is <= k (k >= 1)."""
    k = max(1, min(int(k), n))
    for d in range(k, 0, -1):
        if n % d == 0:
            return d
    return 1


@functools.lru_cache(maxsize=None)
def subset_shape(shape: torch.Size, subsets) -> tuple:
    """How the gradient is viewed so that each row of the view is one subset: ('rows', dim) for the
    paper's partition (sum over `dim`), ('flat', (count, size)) for contiguous chunks."""
    if subsets == "rows":
        m, n = shape
        return ("rows", 1 if m >= n else 0)
    numel = math.prod(shape)
    k = int(subsets)
    size = largest_divisor_at_most(numel, k if k > 0 else int(math.sqrt(numel) / abs(k)))
    return ("flat", (numel // size, size))


def subset_sq(g: torch.Tensor, how: tuple) -> torch.Tensor:
    kind, arg = how
    if kind == "rows":
        return (g * g).sum(dim=arg, keepdim=True)
    return (g.reshape(arg) ** 2).sum(dim=1, keepdim=True)


def divide(num: torch.Tensor, denom: torch.Tensor, how: tuple) -> torch.Tensor:
    kind, arg = how
    if kind == "rows":
        return num / denom
    return (num.reshape(arg) / denom).reshape(num.shape)


class AdamWSN(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 subsets="rows", rank: int = 0, update_proj_gap: int = 200, proj: str = "svd", seed: int = 0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if subsets != "rows" and not (isinstance(subsets, int) and not isinstance(subsets, bool) and subsets != 0):
            raise ValueError(f"subsets must be 'rows' or a non-zero integer (a subset size; -k: sqrt(numel)/k), got {subsets!r}")
        if not (isinstance(rank, int) and rank >= 0 and isinstance(update_proj_gap, int) and update_proj_gap >= 1):
            raise ValueError(f"rank must be an integer >= 0 and update_proj_gap an integer >= 1, got {rank!r}, {update_proj_gap!r}")
        if proj not in KINDS:
            raise ValueError(f"proj '{proj}' unknown; valid: {', '.join(KINDS)}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                     subsets=subsets, rank=rank, update_proj_gap=update_proj_gap,
                                                     proj=proj, seed=seed, sn=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for i, (group, p, st) in enumerate(params_with_grad(self)):
            b1, b2 = group["betas"]
            g = p.grad
            sn = bool(group["sn"]) and p.dim() == 2
            sm = sn and group["rank"] > 0 and min(p.shape) > group["rank"]
            if "step" not in st:
                st["step"] = 0
            how = subset_shape(p.shape, group["subsets"]) if sn else None
            if sm:
                right = p.shape[0] >= p.shape[1]
                if "basis" not in st or st["step"] % group["update_proj_gap"] == 0:
                    st["basis"] = basis(g, group["rank"], group["proj"], right,
                                        seed=(group["seed"] * 1_000_003 + i) * 1_000_003 + st["step"])
                    st.pop("exp_avg", None)  # the moment restarts in the new subspace
                r = down(g, st["basis"], right)
            if "exp_avg" not in st:
                st["exp_avg"] = torch.zeros_like(r if sm else g)
            if "exp_avg_sq" not in st:
                st["exp_avg_sq"] = torch.zeros_like(subset_sq(g, how) if sn else g)
            st["step"] += 1
            t = st["step"]
            m, v = st["exp_avg"], st["exp_avg_sq"]
            v.mul_(b2).add_(subset_sq(g, how) if sn else g * g, alpha=1 - b2)
            denom = v.sqrt().add_(group["eps"])
            if sm:
                m.mul_(b1).add_(r, alpha=1 - b1)
                num = up(m, st["basis"], right) + (g - up(r, st["basis"], right))
            else:
                m.mul_(b1).add_(g, alpha=1 - b1)
                num = m
            step_size = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            p.add_(divide(num, denom, how) if sn else num / denom, alpha=-step_size)
            if group["weight_decay"] > 0:
                p.mul_(1 - group["lr"] * group["weight_decay"])
        return loss
