"""Bootstrapped meta-gradients (Flennerhag, Schroecker, Zahavy, van Hasselt, Silver & Singh 2022,
BMG) for online meta-learning of an update rule's hyperparameters, beside the standard meta-gradient.

A learner's parameters w move by an update rule with meta-parameters eta (here SGD with a learned
log learning rate, `sgd_step`). Every K learner steps the meta-parameters are updated:

- meta-gradient ('mg', truncated backprop):  d/d eta  l_meta(w_K(eta)), backpropagated through the
  K steps (K = 1 is the myopic one-step meta-gradient);
- BMG: from w_K, L more steps of the same rule (no graph) and then one gradient step on the
  meta-objective give the target  w^ = w_{K+L} - beta grad l_meta(w_{K+L});  the meta-loss is the
  matching function mu(w^, w_K(eta)), 1/2 ||w^ - w_K||^2 ('l2') or KL(p_w^ || p_w_K) of the outputs
  on the meta batch ('kl'), with w^ a constant; its gradient again flows through K steps only.

With L = 0 and L2 matching, BMG's meta-gradient is beta times the standard one (the target is one
gradient step on l_meta from w_K: mu' = -(w^ - w_K) dw_K/deta = beta grad l_meta . dw_K/deta), the
identity tests check.
"""
from __future__ import annotations

from typing import Callable

import torch

Params = dict
"""{name: tensor}: a learner's parameters, functional (torch.func.functional_call)."""


def sgd_step(loss_fn: Callable[[Params], torch.Tensor], w: Params, log_lr: torch.Tensor, graph: bool) -> Params:
    """w - exp(log_lr) grad loss(w). graph: keep the graph (for meta-gradients through the step)."""
    loss = loss_fn(w)
    grads = torch.autograd.grad(loss, list(w.values()), create_graph=graph)
    lr = log_lr.exp() if graph else log_lr.detach().exp()
    return {k: v - lr * g for (k, v), g in zip(w.items(), grads)}


def unroll(w0: Params, log_lr: torch.Tensor, batches, loss_fn, graph: bool = True) -> Params:
    """K = len(batches) SGD steps from w0 (detached), differentiable in log_lr when graph."""
    w = {k: v.detach().requires_grad_() for k, v in w0.items()}
    for b in batches:
        w = sgd_step(lambda p: loss_fn(p, b), w, log_lr, graph)
        if not graph:
            w = {k: v.detach().requires_grad_() for k, v in w.items()}
    return w


def target(wK: Params, log_lr: torch.Tensor, boot_batches, loss_fn, meta_loss_fn, beta: float) -> Params:
    """BMG's target: L = len(boot_batches) steps of the rule from w_K, then one step of size beta on
    the meta-objective; no graph (a constant)."""
    w = unroll(wK, log_lr, boot_batches, loss_fn, graph=False)
    with torch.enable_grad():
        g = torch.autograd.grad(meta_loss_fn(w), list(w.values()))
    return {k: (v - beta * gi).detach() for (k, v), gi in zip(w.items(), g)}


def matching(kind: str, w_hat: Params, wK: Params, outputs: Callable[[Params], torch.Tensor] | None = None):
    """mu(w^, w_K): 'l2' = 1/2 sum ||w^ - w_K||^2; 'kl' = mean KL(softmax(out(w^)) || softmax(out(w_K)))."""
    if kind == "l2":
        return 0.5 * sum((w_hat[k] - wK[k]).pow(2).sum() for k in wK)
    if kind == "kl":
        p_hat = torch.log_softmax(outputs(w_hat), -1)
        return torch.nn.functional.kl_div(torch.log_softmax(outputs(wK), -1), p_hat, log_target=True,
                                          reduction="batchmean")
    raise ValueError(f"matching '{kind}' unknown; valid: l2, kl")


def meta_gradient(method: str, w0: Params, log_lr: torch.Tensor, inner_batches, loss_fn, meta_loss_fn,
                  boot_batches=(), beta: float = 1.0, match: str = "l2", outputs=None):
    """(d/d log_lr of the meta-loss, w_K detached): 'mg' differentiates l_meta(w_K); 'bmg' the
    matching loss to the bootstrapped target. Both backpropagate through the K inner steps only."""
    wK = unroll(w0, log_lr, inner_batches, loss_fn, graph=True)
    if method == "mg":
        loss = meta_loss_fn(wK)
    elif method == "bmg":
        w_hat = target(wK, log_lr, boot_batches, loss_fn, meta_loss_fn, beta)
        loss = matching(match, w_hat, wK, outputs)
    else:
        raise ValueError(f"meta-gradient method '{method}' unknown; valid: mg, bmg")
    (g,) = torch.autograd.grad(loss, [log_lr])
    return g, {k: v.detach() for k, v in wK.items()}
