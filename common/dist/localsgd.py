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
- `OverlappedDiLoCo` (Kale, Douillard and Donchev, 2025): the outer all-reduce runs while the next
  inner phase computes, so the averaged outer gradient of round t is only available at the end of
  round t + 1. `delayed` steps with that stale average; `eager` steps with a mixture in which the
  worker's own term is already current.
- `CO2` (Sun et al., 2024): the delayed overlap with the authors' outer step: heavy-ball momentum
  on the outer gradient divided by a staleness gap penalty, the momentum clipped elementwise.
- `NoLoCo` (Kolehmainen et al., 2025): no global collective at all; after each inner phase every
  worker averages with a random small group (a pair) and steps its own copy of the global
  parameters with a momentum update that also pulls it toward the group.
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


class OverlappedDiLoCo(DiLoCo):
    """DiLoCo with the outer all-reduce overlapped with computation (Kale, Douillard and Donchev,
    2025, "Eager updates for overlapped communication and computation in DiLoCo"). At the end of
    round t worker m sends its outer gradient D_m(t) = theta_m - (its replica after H inner steps)
    and, without waiting for the all-reduce, steps its own copy theta_m of the global parameters with
    its own outer optimizer, using

        delayed: U_m(t) = mean_k D_k(t - 1)                                  (the last finished all-reduce)
        eager:   U_m(t) = (D_m(t) + sum_{k != m} D_k(t - 1)) / M
                        = mean_k D_k(t - 1) + (D_m(t) - D_m(t - 1)) / M      (its own term current)

    with D(-1) = 0, then starts round t + 1 from theta_m. Every D_k(t) reaches every worker once, with
    weight 1 / M: a worker's own at round t, the others' at round t + 1. Under `delayed` all copies
    stay equal; under `eager` they differ by the local terms, so each worker keeps its own copy and
    outer optimizer. With M = 1, `eager` is DiLoCo. The communication is DiLoCo's (one all-reduce of
    the outer gradients per round); the evaluated model is worker 0's copy as it stands (the last
    round's all-reduce still in flight)."""

    MODES = ("delayed", "eager")

    def __init__(self, model: nn.Module, make_inner: Callable, comm: Comm, workers: list[int], sync_every: int,
                 outer_lr: float = 0.7, outer_momentum: float = 0.9, nesterov: bool = True, mode: str = "eager"):
        if mode not in self.MODES:
            raise ValueError(f"mode '{mode}' unknown; valid: {', '.join(self.MODES)}")
        super().__init__(model, make_inner, comm, workers, sync_every, outer_lr, outer_momentum, nesterov)
        self.mode = mode
        self.copies = [model] + [copy.deepcopy(model) for _ in self.workers[1:]]
        self.outers = [self.outer] + [torch.optim.SGD(c.parameters(), lr=outer_lr, momentum=outer_momentum,
                                                      nesterov=bool(nesterov and outer_momentum > 0))
                                      for c in self.copies[1:]]
        zeros = [torch.zeros_like(p) for p in model.parameters()]
        self.prev_mean = [z.clone() for z in zeros]
        self.prev_own = [[z.clone() for z in zeros] for _ in self.workers]

    def pseudo_gradients(self) -> list[list[torch.Tensor]]:
        return [[a.detach() - b.detach() for a, b in zip(c.parameters(), r.parameters())]
                for c, r in zip(self.copies, self.replicas)]

    def sync(self) -> None:
        own = self.pseudo_gradients()
        mean = self.comm.mean(own)  # in flight during the next round; used at its end
        for i, (c, opt) in enumerate(zip(self.copies, self.outers)):
            if self.mode == "eager":
                upd = [m + (d - d0) / self.comm.n for m, d, d0 in zip(self.prev_mean, own[i], self.prev_own[i])]
            else:
                upd = self.prev_mean
            for p, u in zip(c.parameters(), upd):
                p.grad = u.clone()
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for q, p in zip(self.replicas[i].parameters(), c.parameters()):
                    q.copy_(p)
        self.prev_mean, self.prev_own = [m.clone() for m in mean], own

    @property
    def eval_model(self) -> nn.Module:
        return self.copies[0]

    def state(self) -> dict:
        return {**super().state(), "copies": self.copies[1:], "outers": self.outers[1:]}

    def state_dict(self) -> dict:
        return {"t": self.t, "prev_mean": self.prev_mean, "prev_own": self.prev_own}

    def load_state_dict(self, sd: dict) -> None:
        self.t = int(sd["t"])
        self.prev_mean = [t.clone() for t in sd["prev_mean"]]
        self.prev_own = [[t.clone() for t in ts] for ts in sd["prev_own"]]


class CO2(OverlappedDiLoCo):
    """CO2 (Sun, Qin, Sun, Li, Li, Shen, Qiao and Zhong, 2024, "CO2: Efficient Distributed Training with
    Full Communication-Computation Overlap"): local updating with the outer all-reduce fully overlapped
    with the next round (`delayed`: round t's average is applied at the end of round t + 1), and the
    outer step of the authors' released code (fairscale-CO2, `_perform_local_optimization`):

        m <- mu m + U / lambda;   m <- clamp(m, -c, c) (c > 0);   theta <- theta - alpha m

    with U the average of the previous round's outer gradients, lambda the staleness gap penalty and
    c the outer momentum clipping threshold. (The released code calls torch.clamp out of place and
    discards the result, so it never clips; here the clip is applied.) With lambda = 1 and c = 0 this
    is the delayed overlap with heavy-ball outer momentum. Communication: one all-reduce per round."""

    def __init__(self, model: nn.Module, make_inner: Callable, comm: Comm, workers: list[int], sync_every: int,
                 outer_lr: float = 1.0, outer_momentum: float = 0.5, gap_penalty: float = 1.0, clip: float = 0.0):
        if not gap_penalty > 0 or clip < 0:
            raise ValueError(f"gap_penalty must be > 0 and clip >= 0 (0: none), got {gap_penalty}, {clip}")
        super().__init__(model, make_inner, comm, workers, sync_every, outer_lr, outer_momentum, nesterov=False,
                         mode="delayed")
        self.alpha, self.mu, self.lam, self.clip = float(outer_lr), float(outer_momentum), float(gap_penalty), float(clip)
        self.bufs = [[torch.zeros_like(p) for p in model.parameters()] for _ in self.workers]

    def sync(self) -> None:
        own = self.pseudo_gradients()
        mean = self.comm.mean(own)  # in flight during the next round
        with torch.no_grad():
            for c, r, bufs in zip(self.copies, self.replicas, self.bufs):
                for p, b, u in zip(c.parameters(), bufs, self.prev_mean):
                    b.mul_(self.mu).add_(u, alpha=1 / self.lam)
                    if self.clip > 0:
                        b.clamp_(-self.clip, self.clip)
                    p.sub_(b, alpha=self.alpha)
                for q, p in zip(r.parameters(), c.parameters()):
                    q.copy_(p)
        self.prev_mean, self.prev_own = [m.clone() for m in mean], own

    def state_dict(self) -> dict:
        return {**super().state_dict(), "bufs": self.bufs}

    def load_state_dict(self, sd: dict) -> None:
        super().load_state_dict(sd)
        self.bufs = [[t.clone() for t in ts] for ts in sd["bufs"]]


class NoLoCo(DiLoCo):
    """NoLoCo (Kolehmainen, Blagoev, Donaghy, Ersoy and Nies, 2025): DiLoCo without the all-reduce.
    Each worker i keeps its own copy theta_i of the global parameters and its own outer momentum
    delta_i. After H inner steps (phi_i, started from theta_i) the M workers are split into random
    groups of `group_size` (a permutation drawn from (seed, round), the same in every process) and

        delta_i <- mu delta_i + eta (mean_{j in G(i)} (phi_j - theta_j) + mean_{j in G(i)} theta_j - theta_i)
                 = mu delta_i + eta (mean_{j in G(i)} phi_j - theta_i)
        theta_i <- theta_i + delta_i,   phi_i <- theta_i

    the outer-gradient term and the term pulling theta_i toward its group sharing eta, as in the
    authors' code as we read it (jkolehm/noloco, src/noloco/sparse_optimizer_c.py; heavy-ball
    momentum, outer_momentum 0.3 in their C4 configs), so a worker only needs its group's mean of
    phi. With group_size = M this is DiLoCo with heavy-ball (non-Nesterov) outer momentum; with
    group_size = 1 the workers never communicate. The evaluated model is worker 0's copy;
    `weight_std` is the root-mean-square deviation of the workers' copies from their mean (the
    authors' divergence metric)."""

    def __init__(self, model: nn.Module, make_inner: Callable, comm: Comm, workers: list[int], sync_every: int,
                 outer_lr: float = 0.7, outer_momentum: float = 0.3, group_size: int = 2, seed: int = 0):
        if group_size < 1 or comm.n % group_size:
            raise ValueError(f"group_size ({group_size}) must divide the number of workers ({comm.n})")
        super().__init__(model, make_inner, comm, workers, sync_every, outer_lr, outer_momentum, nesterov=False)
        self.group_size, self.seed = int(group_size), int(seed)
        self.eta, self.mu = float(outer_lr), float(outer_momentum)
        self.copies = [model] + [copy.deepcopy(model) for _ in self.workers[1:]]
        self.momenta = [[torch.zeros_like(p) for p in model.parameters()] for _ in self.workers]

    def groups(self, rnd: int) -> list[list[int]]:
        """Round `rnd`'s partition of the M workers into groups (the same in every process)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + rnd)
        perm = torch.randperm(self.comm.n, generator=g).tolist()
        k = self.group_size
        return [sorted(perm[i:i + k]) for i in range(0, self.comm.n, k)]

    def sync(self) -> None:
        rnd = self.t // self.H - 1
        phi = [[p.detach() for p in r.parameters()] for r in self.replicas]
        means = self.comm.group_mean(phi, self.workers, self.groups(rnd))
        with torch.no_grad():
            for c, r, mom, mean in zip(self.copies, self.replicas, self.momenta, means):
                for p, d, m in zip(c.parameters(), mom, mean):
                    d.mul_(self.mu).add_(m - p, alpha=self.eta)
                    p.add_(d)
                for q, p in zip(r.parameters(), c.parameters()):
                    q.copy_(p)

    def weight_std(self) -> float:
        """sqrt(mean over workers and entries of (theta_i - mean_k theta_k)^2) (control traffic; the
        sums in worker order, so the simulated and the multi-process runs agree bit for bit)."""
        everyone = [list(range(self.comm.n))]
        own = [[p.detach() for p in c.parameters()] for c in self.copies]
        mean = self.comm.group_mean(own, self.workers, everyone, control=True)[0]
        sq = [[sum(((a - b) ** 2).sum() for a, b in zip(ts, mean)).reshape(1)] for ts in own]
        n = sum(p.numel() for p in self.copies[0].parameters())
        return float(self.comm.group_mean(sq, self.workers, everyone, control=True)[0][0].item() / n) ** 0.5

    @property
    def eval_model(self) -> nn.Module:
        return self.copies[0]

    def state(self) -> dict:
        return {**super().state(), "copies": self.copies[1:]}

    def state_dict(self) -> dict:
        return {"t": self.t, "momenta": self.momenta}

    def load_state_dict(self, sd: dict) -> None:
        self.t = int(sd["t"])
        self.momenta = [[t.clone() for t in ts] for ts in sd["momenta"]]
