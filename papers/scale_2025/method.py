"""SCALE (Glentis, Li, Han and Hong, 2025): Stochastic Column-normalized Last-layer momEntum.

Every matrix is stepped by SGD with its gradient normalized per output unit (each unit's incoming
weights divided by their root-mean-square), and only the output layer keeps a momentum, whose
normalized value is the step:

    hidden matrices and embeddings:  W <- W (1 - lr wd) - lr G / rms_in(G)
    output layer:                    M <- b M + (1 - b) G;  W <- W (1 - lr wd) - lr M / rms_in(M)
    vectors (norms, biases):         AdamW (common.optim.base.adam_direction)

rms_in reduces over the layer's input axis (common.optim.layers: dim 1 of nn.Linear's (out, in),
dim 0 of GPT-2's Conv1D (in, out) and of an embedding table (vocab, d), as the authors' code treats
LLaMA's embed_tokens; a convolution kernel as its (out, in x kernel) matrix, as the authors' code
flattens it), floored at 1e-8. As we read the authors' code (scale_optimizer.py in
OptimAI-Lab/Minimalist_LLM_Pretraining): the output layer's momentum is an EMA (lerp), the vectors'
Adam shares the learning rate (`adam_lr` defaults to `lr`), weight decay is decoupled and applied
before the step. With `momentum=0` this is column-normalized SGD everywhere (the paper's ablation).

The layer roles come from the model (`model_groups`, used by the tasks through
common.optim.optimizer_params); from plain parameters the last matrix is taken as the output layer
and every matrix as (out, in)."""
from __future__ import annotations

import torch

from optrepro.optim.base import adam_direction, check_args, check_params, eval_closure, params_with_grad
from optrepro.optim.layers import RoleAware, as_matrix


def rms_normalize(g: torch.Tensor, in_dim: int) -> torch.Tensor:
    """g divided by its root-mean-square over `in_dim` (each output unit's row), floored at 1e-8."""
    return g / g.square().mean(dim=in_dim, keepdim=True).sqrt().clamp_min(1e-8)


class SCALE(RoleAware, torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.9, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        check_args(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        super().__init__(check_params(params), dict(lr=lr, momentum=momentum, betas=tuple(betas), eps=eps,
                                                    weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = eval_closure(closure)
        for group, p, st in params_with_grad(self):
            lr, g = group["lr"], p.grad
            role, in_dim = self.roles[id(p)]
            if role == "vector":
                u = adam_direction(st, g, group["betas"], group["eps"])
            else:
                if role == "output" and group["momentum"] > 0:
                    if "momentum_buffer" not in st:
                        st["momentum_buffer"] = torch.zeros_like(g)
                    g = st["momentum_buffer"].lerp_(g, 1 - group["momentum"])
                u = rms_normalize(as_matrix(g), in_dim).view_as(g)
            p.mul_(1 - lr * group["weight_decay"]).add_(u, alpha=-lr)
        return loss
