r"""AdaHessian (Yao, Gholami, Shen, Mustafa, Keutzer and Mahoney, AAAI 2021).

Adam with the squared gradient replaced by the squared Hutchinson estimate of the Hessian diagonal:

    D_t   = |z ⊙ (H_t z)|,  z Rademacher, H_t the minibatch Hessian (one Hessian-vector product);
            for a convolution kernel (4-D) D_t is averaged over the kernel's spatial dims (the
            paper's "spatial averaging"); `update_every` k > 1 refreshes D_t every k steps only
    m_t   = β1 m_{t-1} + (1 - β1) g_t
    v_t   = β2 v_{t-1} + (1 - β2) D_t^2               (only when D_t is refreshed)
    θ_t   = θ_{t-1} - lr ( (m_t / (1 - β1^t)) / ((v_t / (1 - β2^t))^(k_h/2) + eps) + wd θ_{t-1} )

with k_h the Hessian power (1 in the paper's experiments) and decoupled weight decay. What differs
from Adam: the second moment tracks curvature, not gradient scale, and costs one extra backward pass
through the gradient's graph, so the loss must be backpropagated with create_graph=True
(common.train does so for optimizers with `needs_graph = True`).

Probes: each parameter draws its own z from a generator seeded by (seed, its step, its group and
position), so a parameter's trajectory does not depend on which other parameters have gradients and
a resumed run draws the same probes. Reference: pytorch-optimizer 4.1.0's AdaHessian fed the same
Hessian estimates (tests/reference/test_adahessian.py), and the spatial average written out."""
from __future__ import annotations

import torch

from optrepro.curvature import hvp, rademacher
from optrepro.optim.base import check_args, check_params, eval_closure, params_with_grad


class AdaHessian(torch.optim.Optimizer):
    needs_graph = True
    """The trainer must call loss.backward(create_graph=True)."""

    def __init__(self, params, lr: float = 0.15, betas=(0.9, 0.999), eps: float = 1e-4,
                 weight_decay: float = 0.0, hessian_power: float = 1.0, update_every: int = 1,
                 spatial_average: bool = True, seed: int = 0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if not (isinstance(hessian_power, (int, float)) and 0 < hessian_power <= 1):
            raise ValueError(f"hessian_power must be in (0, 1], got {hessian_power!r}")
        if not (isinstance(update_every, int) and update_every >= 1):
            raise ValueError(f"update_every must be an integer >= 1, got {update_every!r}")
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                    hessian_power=hessian_power, update_every=update_every,
                                                    spatial_average=spatial_average))
        self.seed = int(seed)

    def _probe(self, p: torch.Tensor, step: int, gi: int, pi: int) -> torch.Tensor:
        return rademacher(p, torch.Generator().manual_seed(((self.seed * 1_000_003 + step) * 1_009 + gi) * 10_007 + pi))

    def hessian_diag(self, items) -> list[torch.Tensor]:
        """D for each (group, p, state, gi, pi) in `items` from one Hessian-vector product through the
        gradients' graph."""
        for _, p, _, _, _ in items:
            if p.grad.grad_fn is None:
                raise RuntimeError("AdaHessian needs the gradient's graph: call loss.backward(create_graph=True)")
        zs = [self._probe(p, st["step"], gi, pi) for _, p, st, gi, pi in items]
        with torch.enable_grad():
            hz = hvp(None, [it[1] for it in items], zs, grads=[it[1].grad for it in items])
        out = []
        for (group, p, _, _, _), z, h in zip(items, zs, hz):
            d = (h.detach() * z).abs()
            if group["spatial_average"] and d.ndim == 4:
                d = d.mean(dim=(2, 3), keepdim=True).expand_as(d)
            out.append(d)
        return out

    def step(self, closure=None):
        loss = eval_closure(closure)
        index = {id(p): (gi, pi) for gi, g in enumerate(self.param_groups) for pi, p in enumerate(g["params"])}
        items = []
        for group, p, st in params_with_grad(self):
            if "step" not in st:
                st.update(step=0, exp_avg=torch.zeros_like(p), exp_hessian_diag_sq=torch.zeros_like(p))
            st["step"] += 1
            items.append((group, p, st, *index[id(p)]))
        fresh = [it for it in items if (it[2]["step"] - 1) % it[0]["update_every"] == 0]
        diags = dict(zip((id(it[1]) for it in fresh), self.hessian_diag(fresh))) if fresh else {}
        with torch.no_grad():
            for group, p, st, _, _ in items:
                b1, b2 = group["betas"]
                g = p.grad.detach()
                st["exp_avg"].mul_(b1).add_(g, alpha=1 - b1)
                if id(p) in diags:
                    d = diags[id(p)]
                    st["exp_hessian_diag_sq"].mul_(b2).addcmul_(d, d, value=1 - b2)
                bc1, bc2 = 1 - b1 ** st["step"], 1 - b2 ** st["step"]
                denom = (st["exp_hessian_diag_sq"] / bc2).pow(group["hessian_power"] / 2).add_(group["eps"])
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(st["exp_avg"], denom, value=-group["lr"] / bc1)
        return loss
