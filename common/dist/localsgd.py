"""Training with M workers: synchronous data parallelism and DiLoCo.

Both take the workers this process hosts (common.dist.world.local_workers) and a Comm; each step
calls `loss_fn(worker, model) -> loss` once per hosted worker, so the same code runs all M workers
in one process (the simulated mode) or M / W of them in each of W processes.

- `DataParallel`: every step, each worker's gradient on its own batch; the gradients are averaged
  over the workers (one all-reduce per step) and one optimizer step is taken on the shared model:
  the arithmetic of DDP, i.e. the gradient of the mean of the workers' losses.
- `DiLoCo` (Douillard et al., 2023, Algorithm 1): every worker holds a replica of the global model
  and its own inner optimizer (AdamW in the paper), takes H inner steps on its own data, then the
  outer gradient (the pseudo-gradient theta_global - theta_worker, averaged over workers: one
  all-reduce per H steps) is applied to the global model by the outer optimizer (SGD with Nesterov
  momentum, lr 0.7, momentum 0.9 in the paper), and every replica restarts from the new global
  model. Inner optimizer states persist across rounds, as in torchft's DiLoCo (the reference:
  tests/reference/test_diloco_torchft.py runs both on the same data and compares every parameter).
  Outer SGD with lr 1 and no momentum is parameter averaging (FedAvg / local SGD).
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from optrepro.dist.comm import Comm


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


class DataParallel:
    def __init__(self, model: nn.Module, opt, sched, comm: Comm, workers: list[int]):
        self.model, self.opt, self.sched, self.comm, self.workers = model, opt, sched, comm, list(workers)

    def step(self, loss_fn: Callable[[int, nn.Module], torch.Tensor]) -> list[float]:
        """One synchronous step; returns this process's workers' losses."""
        self.model.train()
        grads, losses = [], []
        for w in self.workers:
            self.opt.zero_grad(set_to_none=True)
            loss = loss_fn(w, self.model)
            loss.backward()
            grads.append(_grads(self.model))
            losses.append(float(loss.detach()))
        avg = self.comm.mean(grads)
        for p, g in zip(self.model.parameters(), avg):
            p.grad = g.clone()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        return losses

    @property
    def eval_model(self) -> nn.Module:
        return self.model

    def state(self) -> dict:
        return {"model": self.model, "opt": self.opt, "sched": self.sched, "comm": self.comm}


class DiLoCo:
    def __init__(self, model: nn.Module, make_inner: Callable, comm: Comm, workers: list[int], sync_every: int,
                 outer_lr: float = 0.7, outer_momentum: float = 0.9, nesterov: bool = True):
        """`model` is the global model (identical on every process); `make_inner(params) -> (opt,
        sched or None)` builds a worker's inner optimizer."""
        if sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {sync_every}")
        self.model, self.comm, self.workers, self.H = model, comm, list(workers), int(sync_every)
        self.replicas = [copy.deepcopy(model) for _ in self.workers]
        inner = [make_inner(r.parameters()) for r in self.replicas]
        self.inner = [o for o, _ in inner]
        self.scheds = [s for _, s in inner]
        self.outer = torch.optim.SGD(model.parameters(), lr=outer_lr, momentum=outer_momentum,
                                     nesterov=bool(nesterov and outer_momentum > 0))
        self.t = 0

    def step(self, loss_fn: Callable[[int, nn.Module], torch.Tensor]) -> list[float]:
        """One inner step on every hosted worker; an outer step after every H-th. Returns the losses."""
        losses = []
        for w, r, opt, sched in zip(self.workers, self.replicas, self.inner, self.scheds):
            r.train()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(w, r)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(float(loss.detach()))
        self.t += 1
        if self.t % self.H == 0:
            self.sync()
        return losses

    def pseudo_gradients(self) -> list[list[torch.Tensor]]:
        """theta_global - theta_worker for each hosted worker."""
        g = [p.detach() for p in self.model.parameters()]
        return [[a - b.detach() for a, b in zip(g, r.parameters())] for r in self.replicas]

    def outer_step(self, avg: list[torch.Tensor]) -> None:
        for p, d in zip(self.model.parameters(), avg):
            p.grad = d.clone()
        self.outer.step()
        self.outer.zero_grad(set_to_none=True)

    def reset_replicas(self) -> None:
        with torch.no_grad():
            for r in self.replicas:
                for q, p in zip(r.parameters(), self.model.parameters()):
                    q.copy_(p)

    def sync(self) -> None:
        self.outer_step(self.comm.mean(self.pseudo_gradients()))
        self.reset_replicas()

    @property
    def eval_model(self) -> nn.Module:
        """The global model (evaluate it right after a sync, where every replica equals it)."""
        return self.model

    def state(self) -> dict:
        return {"model": self.model, "outer": self.outer, "replicas": self.replicas, "inner": self.inner,
                "scheds": [s for s in self.scheds if s is not None], "comm": self.comm, "alg": self}

    def state_dict(self) -> dict:
        return {"t": self.t}

    def load_state_dict(self, sd: dict) -> None:
        self.t = int(sd["t"])
