r"""AdamP and SGDP (Heo et al., ICLR 2021, arXiv:2006.08217), Algorithms 1-2.

A weight followed by a normalization layer is *scale-invariant*: the loss does not change when it
is multiplied by a constant, so its gradient is orthogonal to it. Momentum then accumulates a
radial (norm-increasing) component, the weight norm grows, and the *effective* step size
η/||w||^2 shrinks prematurely. AdamP/SGDP remove the radial component of the update for weights
detected as scale-invariant:

    base update p_t:  SGDP: momentum buffer (or its Nesterov form); AdamP: m̂_t / (sqrt(v̂_t) + ε)
    detect:           for the channel-wise view (one row per output channel), then the layer-wise
                      view (one row): if max_rows |cos(θ_row, g_row)| < δ / sqrt(row dimension),
                      the weight is treated as scale-invariant in that view
    project:          q_t = p_t - θ̂ (θ̂ · p_t) per row, θ̂ = θ / (||θ|| + ε)      (if detected)
    decay:            θ ← θ (1 - η λ r)     r = wd_ratio if detected else 1   (SGDP: / (1 - momentum))
    step:             θ ← θ - η q_t        (AdamP: η / (1 - β1^t))

Only tensors with more than one dimension are tested (biases and norm gains never are). The
whole step, projection included, is one fused function: both views are computed and selected with
`torch.where`, so there is no data-dependent Python branch to break the compiled graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from optrepro.kernels import fused
from optrepro.optim.base import adam_steps, check_args, check_params, eval_closure, init_state, params_with_grad


def _project(p: torch.Tensor, g: torch.Tensor, u: torch.Tensor, delta, wd_ratio, eps):
    """(update with its radial part removed where θ looks scale-invariant, weight-decay ratio)."""
    rows = p.reshape(p.shape[0], -1)
    layer = p.reshape(1, -1)
    cos_c = F.cosine_similarity(g.reshape(p.shape[0], -1), rows, dim=1, eps=eps).abs().max()
    cos_l = F.cosine_similarity(g.reshape(1, -1), layer, dim=1, eps=eps).abs().max()
    hit_c = cos_c < delta / rows.shape[1] ** 0.5
    hit_l = cos_l < delta / layer.shape[1] ** 0.5
    shape = [-1] + [1] * (p.dim() - 1)
    pn_c = p / (rows.norm(dim=1).reshape(shape) + eps)
    pn_l = p / (layer.norm() + eps)
    u_c = u - pn_c * (pn_c * u).reshape(p.shape[0], -1).sum(1).reshape(shape)
    u_l = u - pn_l * (pn_l * u).sum()
    out = torch.where(hit_c, u_c, torch.where(hit_l, u_l, u))
    ratio = 1 + (wd_ratio - 1) * (hit_c | hit_l).to(torch.float64)
    return out, ratio


@fused
def adamp_update(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: float, beta1: float,
                 beta2: float, eps: float, weight_decay: float, delta: float, wd_ratio: float, bc1: float, bc2: float,
                 nesterov: bool, project: bool) -> None:
    m.mul_(beta1).add_(g * (1 - beta1))
    v.mul_(beta2).add_(g * g * (1 - beta2))
    denom = v.sqrt() / bc2 ** 0.5 + eps
    u = (m * beta1 + g * (1 - beta1)) / denom if nesterov else m / denom
    ratio = 1.0
    if project:
        u, ratio = _project(p, g, u, delta, wd_ratio, eps)
    p.mul_(1 - lr * weight_decay * ratio)
    p.sub_(u * (lr / bc1))


@fused
def sgdp_update(p: torch.Tensor, g: torch.Tensor, buf: torch.Tensor, lr: float, momentum: float, dampening: float,
                eps: float, weight_decay: float, delta: float, wd_ratio: float, nesterov: bool, project: bool,
                project_buffer: bool) -> None:
    buf.mul_(momentum).add_(g * (1 - dampening))
    u = g + buf * momentum if nesterov else buf
    ratio = 1.0
    if project:
        u, ratio = _project(p, g, u, delta, wd_ratio, eps)
        if project_buffer and not nesterov:
            buf.copy_(u)
    p.mul_(1 - lr * weight_decay * ratio / (1 - momentum))
    p.sub_(u * lr)


def _check(lr, eps, weight_decay, delta, wd_ratio, **kw):
    check_args(lr=lr, eps=eps, weight_decay=weight_decay, delta=delta, wd_ratio=wd_ratio, **kw)


class AdamP(torch.optim.Optimizer):
    """AdamP with the torch.optim API (defaults from the paper: δ 0.1, wd_ratio 0.1)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 delta: float = 0.1, wd_ratio: float = 0.1, nesterov: bool = False):
        _check(lr, eps, weight_decay, delta, wd_ratio, betas=betas)
        super().__init__(check_params(params), dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                    delta=delta, wd_ratio=wd_ratio, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st, bc1, bc2 in adam_steps(self):
            adamp_update(p, p.grad, st["exp_avg"], st["exp_avg_sq"], group["lr"], *group["betas"], group["eps"],
                         group["weight_decay"], group["delta"], group["wd_ratio"], bc1, bc2, group["nesterov"],
                         p.dim() > 1)
        return loss


class SGDP(torch.optim.Optimizer):
    """SGDP with the torch.optim API (defaults from the paper: δ 0.1, wd_ratio 0.1).

    `project_buffer=True` (default) reproduces the authors' code: without Nesterov, the projection
    is applied in place to the momentum buffer itself, so the buffer loses its radial part too.
    `project_buffer=False` is Algorithm 1 as printed (the buffer is never projected)."""

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9, dampening: float = 0.0, eps: float = 1e-8,
                 weight_decay: float = 0.0, delta: float = 0.1, wd_ratio: float = 0.1, nesterov: bool = False,
                 project_buffer: bool = True):
        _check(lr, eps, weight_decay, delta, wd_ratio, betas=(momentum, dampening),
               beta_names=("momentum", "dampening"))
        super().__init__(check_params(params), dict(lr=lr, momentum=momentum, dampening=dampening, eps=eps,
                                                    weight_decay=weight_decay, delta=delta, wd_ratio=wd_ratio,
                                                    nesterov=nesterov, project_buffer=project_buffer))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            init_state(st, p, "momentum_buffer", step=False)
            sgdp_update(p, p.grad, st["momentum_buffer"], group["lr"], group["momentum"], group["dampening"],
                        group["eps"], group["weight_decay"], group["delta"], group["wd_ratio"], group["nesterov"],
                        p.dim() > 1, group["project_buffer"])
        return loss
