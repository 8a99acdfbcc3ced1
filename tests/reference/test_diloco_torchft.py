"""DiLoCo (common.dist.localsgd.DiLoCo) against torchft 0.2.0's local_sgd.DiLoCo, the reference the
issue names: the same model, inner AdamW, outer Nesterov SGD and batches, and the same parameters
on every worker after every inner and outer step, bit for bit.

torchft runs one DiLoCo per replica, normally across processes under its fault-tolerance Manager
(a lighthouse server and a process group). Here each replica is a thread and the Manager is a
stand-in with the one behaviour DiLoCo uses: `allreduce(t)` leaves in t the sum of the replicas'
tensors (added in replica order, as ours adds its workers) divided by their number, which is what
torchft's Manager does with ReduceOp.AVG (a SUM all-reduce, then `tensor /= num_participants`);
`should_commit` always commits."""
from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from optrepro.dist.comm import Comm
from optrepro.dist.localsgd import DiLoCo
from optrepro.dist.world import World

from torchft import local_sgd  # a dev dependency: missing, this fails rather than skips

pytestmark = pytest.mark.reference

M, H, ROUNDS = 3, 4, 3
INNER = dict(lr=3e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
OUTER = dict(lr=0.7, momentum=0.9, nesterov=True)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(worker: int, step: int):
    g = torch.Generator().manual_seed(1000 * worker + step)
    x = torch.randn(8, 6, generator=g)
    return x, torch.randint(0, 3, (8,), generator=g)


def loss_of(model, worker, step):
    x, y = batch(worker, step)
    return nn.functional.cross_entropy(model(x), y)


class _Done:
    def wait(self, timeout=None):
        return True

    def get_future(self):
        f = torch.futures.Future()
        f.set_result(None)
        return f


class _Hub:
    """The replicas' meeting point: every allreduce call is matched across threads by its order."""

    def __init__(self, n):
        self.n, self.slots, self.barrier = n, [None] * n, threading.Barrier(n)

    def allreduce(self, rank, t):
        self.slots[rank] = t.clone()
        self.barrier.wait()
        total = self.slots[0].clone()
        for s in self.slots[1:]:
            total += s
        self.barrier.wait()
        t.copy_(total)
        t /= self.n
        return _Done()


class _Manager:
    _use_async_quorum = False

    def __init__(self, rank, hub):
        self.rank, self.hub, self.step = rank, hub, 0

    def allreduce(self, tensor, should_quantize=False, **kw):
        return self.hub.allreduce(self.rank, tensor)

    def should_commit(self, timeout=None):
        self.step += 1
        return True

    def current_step(self):
        return self.step

    def start_quorum(self, *a, **k):
        pass

    def register_state_dict_fn(self, *a, **k):
        pass

    def allow_state_dict_read(self):
        pass

    def disallow_state_dict_read(self):
        pass


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def run_torchft():
    """Every replica's parameters after each of its steps (threads as replicas)."""
    hub = _Hub(M)
    trace = [[None] * (H * ROUNDS) for _ in range(M)]
    errors = []

    models = [make_model() for _ in range(M)]  # here: the global RNG is shared by the threads

    def replica(w):
        try:
            model = models[w]
            inner = torch.optim.AdamW(model.parameters(), **INNER)
            outer = torch.optim.SGD(model.parameters(), **OUTER)
            with local_sgd.DiLoCo(_Manager(w, hub), [model], inner, outer, sync_every=H):
                for s in range(H * ROUNDS):
                    inner.zero_grad(set_to_none=True)
                    loss_of(model, w, s).backward()
                    inner.step()  # the post-step hook takes the outer step after every H-th
                    trace[w][s] = _params(model)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
            hub.barrier.abort()

    torch.set_num_threads(1)
    threads = [threading.Thread(target=replica, args=(w,)) for w in range(M)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return trace


def run_ours():
    model = make_model()
    alg = DiLoCo(model, lambda ps: (torch.optim.AdamW(ps, **INNER), None), Comm(M, World()), list(range(M)), H,
                 OUTER["lr"], OUTER["momentum"], OUTER["nesterov"])
    trace = [[None] * (H * ROUNDS) for _ in range(M)]
    for s in range(H * ROUNDS):
        alg.step(lambda w, m: loss_of(m, w, s))
        for w, r in enumerate(alg.replicas):
            trace[w][s] = _params(r)
    return trace, alg


def test_diloco_equals_torchft_every_step():
    theirs = run_torchft()
    ours, alg = run_ours()
    for w in range(M):
        for s in range(H * ROUNDS):
            for a, b in zip(ours[w][s], theirs[w][s]):
                assert torch.equal(a, b), f"worker {w}, step {s + 1}: max diff {(a - b).abs().max():.3g}"
    # after the last outer step every replica is the global model
    for a, b in zip(_params(alg.model), theirs[0][-1]):
        assert torch.equal(a, b)
    # and the workers did drift apart between outer steps (the comparison is not vacuous)
    assert not torch.equal(ours[0][H - 2][0], ours[1][H - 2][0])


def test_outer_step_literal():
    """One round by hand: global - lr_outer * nesterov(mean_w(global - worker_w))."""
    model = make_model()
    alg = DiLoCo(model, lambda ps: (torch.optim.SGD(ps, lr=0.1), None), Comm(2, World()), [0, 1], 2,
                 outer_lr=0.5, outer_momentum=0.9, nesterov=True)
    g0 = _params(model)
    for s in range(2):
        if s == 1:
            before = [_params(r) for r in alg.replicas]
            grads = []
            for w, r in enumerate(alg.replicas):
                r.zero_grad()
                loss_of(r, w, s).backward()
                grads.append([p.grad.clone() for p in r.parameters()])
            local = [[p - 0.1 * g for p, g in zip(b, gs)] for b, gs in zip(before, grads)]
        alg.step(lambda w, m: loss_of(m, w, s))
    delta = [(g - a + g - b) / 2 for g, a, b in zip(g0, *local)]
    # SGD Nesterov from a zero buffer: buf = d, update = d + 0.9 * d
    expect = [g - 0.5 * (d + 0.9 * d) for g, d in zip(g0, delta)]
    for p, e in zip(alg.model.parameters(), expect):
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-7)
