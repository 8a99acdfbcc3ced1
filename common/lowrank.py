"""Low-rank and subspace optimizer pieces: projectors with refresh schedules, and GaLore's Adam in
the projected space.

A projector maps a 2-D gradient G (m x n) to a small one and back:
- right side (the default when m >= n): R = G B^T with B (rank x n) orthonormal rows; back: R B;
  left side (m < n): R = B^T G with B (m x rank) orthonormal columns; back: B R;
- kind "svd": B = the top singular vectors of the gradient at the refresh step (GaLore);
  "random": a Gaussian matrix orthonormalized by QR (GaLore's random-projection ablation, FLORA);
  "columns": `rank` coordinates chosen uniformly without replacement (a coordinate subspace);
- the basis is recomputed when step % gap == 0 (step counted from 0, before the update); random
  bases are seeded by (seed, step), so a resumed run draws the same basis and the optimizer state
  holds only tensors.

`GaLoreAdamW`: Adam moments kept in the projected space (rank x n or m x rank instead of m x n)
for every 2-D parameter with min(m, n) > rank; other parameters get plain Adam moments. Bias
correction folded into the step size and decoupled weight decay after the step, as in the authors'
galore-torch AdamW (tests check equality step by step).

`FrugalAdamW`: FRUGAL's gradient splitting, AdamW on the projected part and a state-free rule
(signSGD) on the residual, so the update stays full-rank at GaLore's state (tests/reference/test_frugal.py).
"""
from __future__ import annotations

import math

import torch

from optrepro.optim.base import adam_direction, check_args, check_params, eval_closure

KINDS = ("svd", "random", "columns")


def basis(G: torch.Tensor, rank: int, kind: str = "svd", right: bool | None = None, seed: int = 0) -> torch.Tensor:
    """The projection basis of G: (rank x n) rows for the right side, (m x rank) columns for the left."""
    if kind not in KINDS:
        raise ValueError(f"projector kind '{kind}' unknown; valid: {', '.join(KINDS)}")
    m, n = G.shape
    right = m >= n if right is None else right
    k = n if right else m
    if kind == "svd":
        low = G.dtype in (torch.float16, torch.bfloat16)  # SVD in float32 for half precision (as galore-torch)
        U, _, Vh = torch.linalg.svd(G.float() if low else G, full_matrices=False)
        # a copy: a slice would keep all of U or Vh alive in the optimizer state
        return (Vh[:rank] if right else U[:, :rank]).to(G.dtype, copy=True).contiguous()
    gen = torch.Generator().manual_seed(seed)
    if kind == "random":
        Q, _ = torch.linalg.qr(torch.randn(k, rank, generator=gen, dtype=torch.float64))
        Q = Q.to(G.dtype)
    else:
        idx = torch.randperm(k, generator=gen)[:rank].sort().values
        Q = torch.zeros(k, rank, dtype=G.dtype)
        Q[idx, torch.arange(rank)] = 1
    return Q.T if right else Q


def down(G: torch.Tensor, B: torch.Tensor, right: bool) -> torch.Tensor:
    return G @ B.T if right else B.T @ G


def up(R: torch.Tensor, B: torch.Tensor, right: bool, scale: float = 1.0) -> torch.Tensor:
    return (R @ B if right else B @ R) * scale


class GaLoreAdamW(torch.optim.Optimizer):
    """AdamW whose moments live in a low-rank projection of each matrix's gradient (Zhao et al.
    2024). rank, update_proj_gap (T), scale (alpha) and proj ('svd' | 'random' | 'columns') as in
    the paper; eps 1e-6 as galore-torch."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
                 rank: int = 8, update_proj_gap: int = 200, scale: float = 0.25, proj: str = "svd", seed: int = 0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, scale=scale)
        if proj not in KINDS:
            raise ValueError(f"proj '{proj}' unknown; valid: {', '.join(KINDS)}")
        if not (isinstance(rank, int) and isinstance(update_proj_gap, int) and rank >= 1 and update_proj_gap >= 1):
            raise ValueError(f"rank and update_proj_gap must be integers >= 1, got {rank!r}, {update_proj_gap!r}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, rank=rank,
                                      update_proj_gap=update_proj_gap, scale=scale, proj=proj, seed=seed))

    @staticmethod
    def projected(p: torch.Tensor, rank: int) -> bool:
        return p.dim() == 2 and min(p.shape) > rank

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                st = self.state[p]
                g = p.grad
                if "step" not in st:
                    st["step"] = 0
                proj = self.projected(p, group["rank"])
                if proj:
                    if "right" not in st:
                        st["right"] = p.shape[0] >= p.shape[1]
                    if "basis" not in st or st["step"] % group["update_proj_gap"] == 0:
                        st["basis"] = basis(g, group["rank"], group["proj"], st["right"],
                                            seed=(group["seed"] * 1_000_003 + i) * 1_000_003 + st["step"])
                    g = down(g, st["basis"], st["right"])
                if "exp_avg" not in st:
                    st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(g), torch.zeros_like(g)
                st["step"] += 1
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                step_size = group["lr"] * math.sqrt(1 - b2 ** st["step"]) / (1 - b1 ** st["step"])
                u = m / v.sqrt().add_(group["eps"])
                if proj:
                    u = up(u, st["basis"], st["right"], group["scale"])
                p.add_(u, alpha=-step_size)
                if group["weight_decay"] > 0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


class FrugalAdamW(torch.optim.Optimizer):
    """FRUGAL (Zmushko et al., 2024): full-rank updates by gradient splitting. Each matrix's gradient
    G is split into its projection onto a `density` fraction of its directions (the state-full part,
    stepped by AdamW with moments kept in that subspace, as GaLore) and the residual
    G - up(down(G)) (the state-free part, stepped by signSGD, or SGD, with no state):

        W <- W (1 - lr wd) - lr up(Adam(down(G))) - lr * free_lr_scale * sign(G - up(down(G)))

    The subspace (projector `proj`: svd | random | columns) is recomputed every `update_gap` steps and
    the moments and their bias-correction step are reset then (the authors' reset_statistics). With
    density 0 every matrix is stepped by the state-free rule alone. Vectors (biases, norms) and
    matrices too small to project get full AdamW. As we read the authors' code: the state-free step
    uses the same learning rate times free_lr_scale (1 by default)."""

    FREE = ("sign", "sgd", "none")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 density: float = 0.25, update_gap: int = 200, proj: str = "svd", free: str = "sign",
                 free_lr_scale: float = 1.0, seed: int = 0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, free_lr_scale=free_lr_scale)
        if proj not in KINDS:
            raise ValueError(f"proj '{proj}' unknown; valid: {', '.join(KINDS)}")
        if free not in self.FREE:
            raise ValueError(f"free '{free}' unknown; valid: {', '.join(self.FREE)}")
        if not 0.0 <= density < 1.0:
            raise ValueError(f"density must be in [0, 1), got {density!r}")
        if not (isinstance(update_gap, int) and update_gap >= 1):
            raise ValueError(f"update_gap must be an integer >= 1, got {update_gap!r}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                    density=density, update_gap=update_gap, proj=proj, free=free,
                                                    free_lr_scale=free_lr_scale, seed=seed))

    @staticmethod
    def split_rank(p: torch.Tensor, density: float) -> int | None:
        """The state-full rank of a matrix (0: all state-free); None for tensors stepped by plain AdamW."""
        if p.dim() != 2:
            return None
        rank = int(density * min(p.shape))
        return rank if rank < min(p.shape) else None

    @staticmethod
    def _adam(st: dict, g: torch.Tensor, group: dict) -> torch.Tensor:
        return adam_direction(st, g, group["betas"], group["eps"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group in self.param_groups:
            lr = group["lr"]
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                st = self.state[p]
                g = p.grad
                st["step"] = st.get("step", 0)
                if group["weight_decay"] > 0:
                    p.mul_(1 - lr * group["weight_decay"])
                rank = self.split_rank(p, group["density"])
                if rank is None:
                    p.add_(self._adam(st, g, group), alpha=-lr)
                elif rank == 0:
                    free = g
                else:
                    if "right" not in st:
                        st["right"] = p.shape[0] >= p.shape[1]
                    if st["step"] % group["update_gap"] == 0:
                        st["basis"] = basis(g, rank, group["proj"], st["right"],
                                            seed=(group["seed"] * 1_000_003 + i) * 1_000_003 + st["step"])
                        for k in ("exp_avg", "exp_avg_sq", "adam_step"):
                            st.pop(k, None)
                    low = down(g, st["basis"], st["right"])
                    p.add_(up(self._adam(st, low, group), st["basis"], st["right"]), alpha=-lr)
                    free = g - up(low, st["basis"], st["right"])
                if rank is not None and group["free"] != "none":
                    p.add_(free.sign() if group["free"] == "sign" else free, alpha=-lr * group["free_lr_scale"])
                st["step"] += 1
        return loss
