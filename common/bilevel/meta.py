"""Gradient-based meta-learning (MAML and its first-order variant): inner adaptation of a model's
parameters on each task's support set by gradient steps, batched over tasks, and the meta-objective
(the query loss after adaptation) whose gradient flows back to the shared initialization.

    theta'_t = theta - alpha grad L_support_t(theta)            (repeated `steps` times)
    meta loss = mean_t L_query_t(theta'_t)

Second-order MAML differentiates through the inner steps (create_graph); first-order MAML treats the
inner gradients as constants, so the meta-gradient is the query gradient at theta'_t. Tasks are
batched with torch.func.vmap over per-task copies of the parameters (one copy per task, expanded from
theta, so autograd gives each task its own inner gradient). Reference: torchopt's MetaSGD on the same
tasks, and the closed form for linear regression (tests/reference/test_maml.py).

Task samplers: the MAML paper's sinusoid regression (`sinusoid_tasks`) and N-way K-shot
classification from a labelled set (`fewshot_tasks`); `adaptation_curve` scores a trained
initialization after 0, 1, ... adaptation steps."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap


def per_task(model: nn.Module, n_tasks: int) -> dict:
    """{name: theta expanded to (n_tasks, *shape)}: copies whose gradients are per task."""
    return {k: v.unsqueeze(0).expand(n_tasks, *v.shape) for k, v in model.named_parameters()}


def forward(model: nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
    """The model on each task's inputs with that task's parameters: params (T, ...), x (T, K, ...)."""
    return vmap(lambda p, xb: functional_call(model, p, (xb,)))(params, x)


def adapt(model: nn.Module, params: dict, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, steps: int,
          lr: float, first_order: bool = False) -> dict:
    """`steps` gradient steps of each task's loss from its own copy. `loss_fn(out, y)` returns the
    per-task losses, shape (T,). With first_order the inner gradients carry no graph."""
    for _ in range(steps):
        losses = loss_fn(forward(model, params, x), y)
        grads = torch.autograd.grad(losses.sum(), list(params.values()), create_graph=not first_order)
        params = {k: v - lr * g for (k, v), g in zip(params.items(), grads)}
    return params


def meta_loss(model: nn.Module, loss_fn: Callable, support: tuple, query: tuple, steps: int, lr: float,
              first_order: bool = False) -> torch.Tensor:
    """mean over tasks of the query loss after adapting on the support set (support/query: (x, y) with
    a leading task dimension); backward() gives the (first-order) MAML meta-gradient in model's .grad."""
    x_s, y_s = support
    adapted = adapt(model, per_task(model, len(x_s)), loss_fn, x_s, y_s, steps, lr, first_order)
    return loss_fn(forward(model, adapted, query[0]), query[1]).mean()


def mse_per_task(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each task, shape (T,)."""
    return (out - y).pow(2).flatten(1).mean(1)


def sinusoid_tasks(n_tasks: int, shots: int, generator: torch.Generator, amplitude=(0.1, 5.0),
                   phase=(0.0, torch.pi), x_range=(-5.0, 5.0), query: int | None = None):
    """The MAML paper's sinusoid regression tasks y = A sin(x - phi), A and phi uniform per task, x
    uniform: ((x_s, y_s), (x_q, y_q), (A, phi)), support (T, shots, 1), query (T, query or shots, 1)."""
    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=generator)
    A, phi = u(*amplitude, n_tasks, 1, 1), u(*phase, n_tasks, 1, 1)
    xs, xq = u(*x_range, n_tasks, shots, 1), u(*x_range, n_tasks, query or shots, 1)
    return (xs, A * torch.sin(xs - phi)), (xq, A * torch.sin(xq - phi)), (A.flatten(), phi.flatten())


def ce_per_task(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each task, shape (T,): out (T, K, classes), y (T, K)."""
    T, K = y.shape
    return nn.functional.cross_entropy(out.reshape(T * K, -1), y.reshape(-1), reduction="none").view(T, K).mean(1)


def fewshot_tasks(x: torch.Tensor, y: torch.Tensor, classes: list[int], n_way: int, shots: int, query: int,
                  n_tasks: int, generator: torch.Generator):
    """N-way K-shot classification tasks from the examples of `classes`: each task draws n_way of them,
    relabels them 0..n_way-1 in a random order, and draws `shots` support and `query` query examples
    per class without overlap. Returns ((x_s, y_s), (x_q, y_q)) with x (T, n_way * K, ...), y (T, n_way * K)."""
    pools = {c: torch.nonzero(y == c).flatten() for c in classes}
    short = [c for c, p in pools.items() if len(p) < shots + query]
    if short or len(classes) < n_way:
        raise ValueError(f"need {n_way} classes with >= {shots + query} examples each; short: {short}")
    xs, ys, xq, yq = [], [], [], []
    for _ in range(n_tasks):
        chosen = [classes[int(i)] for i in torch.randperm(len(classes), generator=generator)[:n_way]]
        s_idx, q_idx, s_lab, q_lab = [], [], [], []
        for label, c in enumerate(chosen):
            pick = pools[c][torch.randperm(len(pools[c]), generator=generator)[:shots + query]]
            s_idx.append(pick[:shots])
            q_idx.append(pick[shots:])
            s_lab += [label] * shots
            q_lab += [label] * query
        xs.append(x[torch.cat(s_idx)])
        xq.append(x[torch.cat(q_idx)])
        ys.append(torch.tensor(s_lab))
        yq.append(torch.tensor(q_lab))
    return (torch.stack(xs), torch.stack(ys)), (torch.stack(xq), torch.stack(yq))


def adaptation_curve(model: nn.Module, loss_fn: Callable, support: tuple, query: tuple, lr: float,
                     steps: Sequence[int], score: Callable) -> dict[int, float]:
    """{s: score(outputs on the query set, query labels)} after s = each of `steps` SGD steps (at lr) on
    each task's support set from the model's parameters (no meta-gradient: evaluation)."""
    params = {k: v.detach() for k, v in per_task(model, len(support[0])).items()}
    out, done = {}, 0
    for s in sorted(steps):
        with torch.enable_grad():
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            params = adapt(model, params, loss_fn, *support, steps=s - done, lr=lr, first_order=True)
        done = s
        with torch.no_grad():
            out[s] = float(score(forward(model, params, query[0]), query[1]))
    return out
