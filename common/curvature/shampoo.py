r"""Shampoo with the scalable variant's blocking, grafting, delayed preconditioners and momentum
(Gupta, Koren and Singer 2018; Anil, Gupta, Koren, Regan and Singer, "Scalable Second Order
Optimization for Deep Learning", 2020).

For a parameter reshaped to a k-dimensional tensor (small dimensions merged, `merge_dims`) and cut
into blocks of at most `block_size` along every dimension, each block G keeps one statistic per
dimension i, over G's mode-i unfolding G_(i):

    S_i <- beta2 S_i + (1 - beta2) G_(i) G_(i)^T        (beta2 = 1: a plain sum, Shampoo's Adagrad form)
    S_i starts at init_eps I

Every `precondition_every` steps (steps k, 2k, ...; identity before the first) the preconditioners
are recomputed as P_i = (S_i + ridge_eps lambda_max(S_i) I)^(-1 / e), e = 2k by default (the inverse
4th roots of a matrix's L and R), by eigh or by the coupled Newton iteration
(common.curvature.inverse_root_newton: the paper computes them this way, off the accelerator). The
Shampoo direction of a block is G x_1 P_1 x_2 P_2 ... x_k P_k (each P_i applied along dimension i).

`one_sided` keeps statistics for some dimensions only ('left': all but the last, e.g. a matrix's
rows, L^(-1/2) G; 'right': the last); e then counts the preconditioned dimensions.

Grafting (layer-wise): the Shampoo direction D of a parameter is rescaled to the norm of the graft
optimizer's direction A (SGD: A = g; AdaGrad: A = g / (sqrt(sum g^2) + diag_eps); RMSProp: the EMA
with beta2 in place of the sum), D <- D ||A|| / ||D||; tensors with fewer than two dimensions after
merging use A itself. Momentum on the update (m <- beta1 m + D, Nesterov: beta1 m + D), and the
graft's own momentum of A is what moves the weights until `start_preconditioning_step`.

    theta <- theta (1 - lr wd) - lr * (m or its Nesterov form)

Statistics and roots are kept in float64 (the matrices are small; float64 makes the roots the same
on every CPU to far below the update's scale). Reference: pytorch-optimizer 4.1.0's ScalableShampoo
(SVD roots, no ridge; and its Schur-Newton roots) given the same settings, step by step
(tests/reference/test_shampoo.py)."""
from __future__ import annotations

import torch

from .core import inverse_root_newton, sym_power

GRAFTS = ("none", "sgd", "adagrad", "rmsprop")
ROOTS = ("eigh", "newton")
SIDES = ("", "left", "right")
"""one_sided: '' preconditions every dimension; 'left' every dimension but the last (a matrix's rows:
L^(-1/2) G); 'right' the last only (G R^(-1/2)). The exponent counts the preconditioned dimensions."""


def merge_dims(shape, max_dim: int) -> list[int]:
    """Merge consecutive dimensions while their product stays <= max_dim ((4, 8, 3, 3) with
    max_dim 128 -> [96, 3]); a tensor that merges to one dimension is not preconditioned."""
    out, prod = [], 1
    for d in shape:
        if prod * d > max_dim and prod > 1:
            out.append(prod)
            prod = d
        else:
            prod *= d
    out.append(prod)
    return out


def _splits(d: int, block: int) -> list[int]:
    return [d] if block <= 0 or block >= d else [block] * ((d - 1) // block) + [d - block * ((d - 1) // block)]


class _Blocks:
    """The blocks of a reshaped tensor: `split(x)` lists them (row-major over the block grid),
    `merge(blocks)` puts them back."""

    def __init__(self, shape: list[int], block: int):
        self.shape = list(shape)
        self.sizes = [_splits(d, block) for d in shape]

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        parts = [x]
        for dim, sizes in enumerate(self.sizes):
            parts = [q for p in parts for q in torch.split(p, sizes, dim=dim)]
        return parts

    def merge(self, parts: list[torch.Tensor]) -> torch.Tensor:
        for dim in reversed(range(len(self.sizes))):
            n = len(self.sizes[dim])
            parts = [torch.cat(parts[i:i + n], dim=dim) for i in range(0, len(parts), n)]
        return parts[0]


def mode_gram(block: torch.Tensor, dim: int) -> torch.Tensor:
    """G_(dim) G_(dim)^T: the block's mode-`dim` unfolding times its transpose."""
    u = block.movedim(dim, 0).reshape(block.shape[dim], -1)
    return u @ u.T


def apply_along(block: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
    """block x_1 mats[0] x_2 mats[1] ...: each (symmetric) matrix applied along its dimension (None:
    that dimension is left as it is)."""
    out = block
    for dim, P in enumerate(mats):
        if P is not None:
            out = torch.tensordot(P, out, dims=([1], [dim])).movedim(0, dim)
    return out


def inverse_root(S: torch.Tensor, e: int, ridge_eps: float, method: str) -> torch.Tensor:
    """(S + ridge_eps lambda_max(S) I)^(-1/e) by eigh or the coupled Newton iteration."""
    ridge = ridge_eps * float(torch.linalg.eigvalsh(S)[-1]) if ridge_eps else 0.0
    if method == "eigh":
        return sym_power(S, -1.0 / e, damping=ridge)
    return inverse_root_newton(S, e, damping=ridge)[0]


class Shampoo(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), weight_decay: float = 0.0,
                 nesterov: bool = True, block_size: int = 128, merge_small_dims: bool = True,
                 precondition_every: int = 10, start_preconditioning_step: int = 10, exponent: int = 0,
                 graft: str = "adagrad", diag_eps: float = 1e-10, init_eps: float = 1e-6,
                 ridge_eps: float = 1e-6, root: str = "eigh", one_sided: str = ""):
        from optrepro.optim.base import check_args, check_params
        check_args(lr=lr, betas=betas, weight_decay=weight_decay, beta_closed=True,  # beta2 = 1: summed statistics
                   diag_eps=diag_eps, init_eps=init_eps, ridge_eps=ridge_eps)
        if betas[0] == 1:
            raise ValueError("betas (beta1) must be in [0, 1), got 1")
        for name, v in (("block_size", block_size), ("precondition_every", precondition_every)):
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not (isinstance(start_preconditioning_step, int) and start_preconditioning_step >= 0):
            raise ValueError(f"start_preconditioning_step must be an integer >= 0, got {start_preconditioning_step!r}")
        if not (isinstance(exponent, int) and exponent >= 0):
            raise ValueError(f"exponent must be an integer >= 0 (0: twice the number of dimensions), got {exponent!r}")
        if graft not in GRAFTS:
            raise ValueError(f"graft must be one of {', '.join(GRAFTS)}, got {graft!r}")
        if root not in ROOTS:
            raise ValueError(f"root must be one of {', '.join(ROOTS)}, got {root!r}")
        if one_sided not in SIDES:
            raise ValueError(f"one_sided must be one of {', '.join(map(repr, SIDES))}, got {one_sided!r}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                                    nesterov=bool(nesterov)))
        self.block_size, self.merge_small_dims = block_size, bool(merge_small_dims)
        self.precondition_every, self.start = precondition_every, start_preconditioning_step
        self.exponent, self.graft, self.root, self.one_sided = exponent, graft, root, one_sided
        self.diag_eps, self.init_eps, self.ridge_eps = float(diag_eps), float(init_eps), float(ridge_eps)
        self.root_computations = 0
        """How many inverse roots were computed (the method's extra cost)."""

    # -- per-parameter layout ------------------------------------------------------------------------
    def _shape(self, p: torch.Tensor) -> list[int]:
        return merge_dims(p.shape, self.block_size) if self.merge_small_dims else list(p.shape)

    def _dims(self, k: int) -> list[int]:
        """The preconditioned dimensions of a k-dimensional (reshaped) tensor."""
        if self.one_sided == "left":
            return list(range(k - 1))
        if self.one_sided == "right":
            return [k - 1]
        return list(range(k))

    def _init(self, p: torch.Tensor, st: dict) -> None:
        st["step"] = 0
        st["momentum"] = torch.zeros_like(p)
        st["graft_momentum"] = torch.zeros_like(p)
        if self.graft in ("adagrad", "rmsprop"):
            st["graft_stat"] = torch.zeros_like(p)
        shape = self._shape(p)
        st["stats"], st["roots"] = [], []
        if len(shape) >= 2:
            for block in _Blocks(shape, self.block_size).split(torch.empty(shape, device="meta")):
                for dim in self._dims(len(shape)):
                    eye = torch.eye(block.shape[dim], dtype=torch.float64, device=p.device)
                    st["stats"].append(self.init_eps * eye)
                    st["roots"].append(eye.clone())

    def _graft_dir(self, g: torch.Tensor, st: dict, beta2: float) -> torch.Tensor:
        if self.graft == "adagrad":
            st["graft_stat"].addcmul_(g, g)
        elif self.graft == "rmsprop":
            st["graft_stat"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        if self.graft in ("adagrad", "rmsprop"):
            return g / (st["graft_stat"].sqrt() + self.diag_eps)
        return g

    def _shampoo_dir(self, g: torch.Tensor, st: dict, beta2: float, refresh: bool) -> torch.Tensor:
        shape = self._shape(g)
        blocks = _Blocks(shape, self.block_size)
        parts = blocks.split(g.detach().to(torch.float64).reshape(shape))
        dims = self._dims(len(shape))
        k = len(dims)
        e = self.exponent or 2 * k
        w = 1.0 if beta2 == 1.0 else 1.0 - beta2
        out = []
        for b, block in enumerate(parts):
            S = st["stats"][b * k:(b + 1) * k]
            for j, dim in enumerate(dims):
                S[j].mul_(beta2).add_(mode_gram(block, dim), alpha=w)
            if refresh:
                for j in range(k):
                    st["roots"][b * k + j] = inverse_root(S[j], e, self.ridge_eps, self.root)
                self.root_computations += k
            mats = [None] * len(shape)
            for j, dim in enumerate(dims):
                mats[dim] = st["roots"][b * k + j]
            out.append(apply_along(block, mats))
        return blocks.merge(out).reshape(g.shape).to(g.dtype)

    def load_state_dict(self, state_dict):
        """torch casts floating-point state to its parameter's dtype on load; the statistics and roots
        are float64, so they are put back as saved (a resumed run repeats the uninterrupted one)."""
        kept = {pid: {k: [t.detach().clone() for t in st[k]] for k in ("stats", "roots") if k in st}
                for pid, st in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        for g_sd, group in zip(state_dict["param_groups"], self.param_groups):
            for pid, p in zip(g_sd["params"], group["params"]):
                for k, ts in kept.get(pid, {}).items():
                    self.state[p][k] = [t.to(device=p.device, dtype=torch.float64) for t in ts]

    # -- the step ------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        from optrepro.optim.base import eval_closure, params_with_grad
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            if "step" not in st:
                self._init(p, st)
            st["step"] += 1
            t = st["step"]
            b1, b2 = group["betas"]
            g = p.grad.detach()
            a = self._graft_dir(g, st, b2)
            if st["stats"]:
                d = self._shampoo_dir(g, st, b2, refresh=t % self.precondition_every == 0)
                if self.graft != "none":
                    d = d * (a.norm() / (d.norm() + 1e-16))
            else:
                d = a.clone()
            st["momentum"].mul_(b1).add_(d)
            st["graft_momentum"].mul_(b1).add_(a)
            pre = t >= self.start
            upd = st["momentum"] if pre else st["graft_momentum"]
            if group["nesterov"]:
                upd = upd * b1 + (d if pre else a)
            if group["weight_decay"]:
                p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_(upd, alpha=-group["lr"])
        return loss
