r"""DoG and L-DoG, "Distance over Gradients" (Ivgi, Hinder & Carmon, ICML 2023, arXiv:2302.12022),
with polynomial-decay iterate averaging.

SGD whose step size needs no tuning: the distance travelled from the initial point over the root
of the summed squared gradient norms,

    r̄_t = max(r_ε, max_{i<=t} ||x_i - x_0||),      r_ε = reps_rel (1 + ||x_0||)
    G_t = Σ_{i<=t} ||g_i||^2  (+ eps once)
    η_t = c · r̄_t / sqrt(G_t)                       # c = lr = 1: the paper's default, not tuned
    x_{t+1} = x_t - η_t g_t

DoG takes the norms over all parameters of a group; L-DoG takes them per tensor ("layer"). Weight
decay is L2 (added to g_t before the norms), as in the authors' package.

The paper evaluates the *averaged* iterate (polynomial decay averaging, Shamir & Zhang 2013):
    x̄_t = (1 - (γ+1)/(t+γ)) x̄_{t-1} + (γ+1)/(t+γ) x_t,    γ = 8.
With `average=True` the optimizer keeps x̄ per parameter and `eval()` swaps it into the
parameters (`train()` swaps back), so any trainer that switches modes (common.train does)
evaluates the averaged model. Only parameters are averaged, not normalization buffers.
"""
from __future__ import annotations

import math

import torch

from optrepro.kernels import fused
from optrepro.optim.base import ModeAware, check_args, check_params, eval_closure, init_state


@fused
def distance(p: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """||p - x0||, compiled into one pass that never materializes p - x0."""
    return torch.linalg.vector_norm(p - x0)


class DoG(ModeAware, torch.optim.Optimizer):
    """DoG with the torch.optim API. `lr` is the paper's c (keep 1.0)."""
    layerwise = False

    def __init__(self, params, lr: float = 1.0, reps_rel: float = 1e-6, eps: float = 1e-8, weight_decay: float = 0.0,
                 average: bool = True, avg_gamma: float = 8.0):
        check_args(lr=lr, lr_positive=True, reps_rel=reps_rel, eps=eps, weight_decay=weight_decay,
                   avg_gamma=avg_gamma)
        if reps_rel == 0:
            raise ValueError("reps_rel must be > 0 (it sets the first step size)")
        super().__init__(check_params(params), dict(lr=lr, reps_rel=reps_rel, eps=eps, weight_decay=weight_decay,
                                                    average=average, avg_gamma=avg_gamma, train_mode=True, t=0))

    def _norms(self, tensors) -> torch.Tensor:
        """Per-tensor L2 norms as one 1-D float64 tensor."""
        return torch.stack([n.double() for n in torch._foreach_norm(tensors)]) if tensors else torch.zeros(0)

    @torch.no_grad()
    def step(self, closure=None):
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError(f"{type(self).__name__}.step() called in eval mode (averaged weights loaded): "
                               "call opt.train() first")
        loss = eval_closure(closure)
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            sts = [init_state(self.state[p], p, step=False, x0=True) for p in ps]
            grads = [p.grad for p in ps]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, ps, alpha=group["weight_decay"])
            gsq = self._norms(grads) ** 2
            dist = torch.stack([distance(p, s["x0"]).double() for p, s in zip(ps, sts)])
            if self.layerwise:  # x_{t+1} = x_t - η_t g_t, as the package writes it (add with alpha)
                for p, g, e in zip(ps, grads, self._layer_etas(group, ps, sts, gsq, dist)):
                    p.add_(g, alpha=-e)
            else:
                torch._foreach_add_(ps, grads, alpha=-self._group_eta(group, ps, gsq, dist))
            group["t"] += 1
            if group["average"]:
                w = (group["avg_gamma"] + 1) / (group["t"] + group["avg_gamma"])
                avgs = [init_state(s, p, step=False, avg=True)["avg"] for s, p in zip(sts, ps)]
                torch._foreach_lerp_(avgs, ps, w)
        return loss

    def _group_eta(self, group, ps, gsq, dist) -> float:
        """DoG: r̄ and G over the whole group, kept in the group as Python floats (float64 that
        load_state_dict does not cast, and not reset when a parameter has no gradient on a step)."""
        if group.get("G") is None:
            group["rbar"] = group["reps_rel"] * (1 + float(self._norms(ps).norm()))
            group["G"] = float(gsq.sum()) + group["eps"]
        else:
            group["rbar"] = max(group["rbar"], float(dist.norm()))
            group["G"] += float(gsq.sum())
        return group["lr"] * group["rbar"] / math.sqrt(group["G"])

    def _layer_etas(self, group, ps, sts, gsq, dist) -> list[float]:
        """L-DoG: r̄ and G per tensor, in its state as Python floats; a tensor whose first gradient
        comes late (a frozen layer unfrozen) starts its own statistics then."""
        x0n = self._norms(ps) if any("G" not in s for s in sts) else None  # only a tensor's first step
        for i, s in enumerate(sts):
            if "G" not in s:
                s["rbar"] = group["reps_rel"] * (1 + float(x0n[i]))
                s["G"] = float(gsq[i]) + group["eps"]
            else:
                s["rbar"] = max(s["rbar"], float(dist[i]))
                s["G"] += float(gsq[i])
            s["eta"] = group["lr"] * s["rbar"] / math.sqrt(s["G"])
        return [s["eta"] for s in sts]

    @torch.no_grad()
    def _swap(self, train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train or not group["average"]:
                group["train_mode"] = train
                continue
            for p in group["params"]:
                st = self.state[p]
                if "avg" in st:
                    tmp = p.detach().clone()
                    p.copy_(st["avg"])
                    st["avg"].copy_(tmp)
            group["train_mode"] = train

    def train(self):
        """Parameters hold the DoG iterate x_t."""
        self._swap(True)

    def eval(self):
        """Parameters hold the averaged iterate x̄_t (if average=True)."""
        self._swap(False)


class LDoG(DoG):
    """Layer-wise DoG: r̄ and G per parameter tensor."""
    layerwise = True
