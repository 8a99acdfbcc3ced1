"""Overlapped DiLoCo (common.dist.localsgd.OverlappedDiLoCo) against its equations, on M = 3 workers
of a small classifier with inner AdamW and outer Nesterov SGD:
- the literal rounds: each worker's copy of the global parameters after every round equals a
  direct recomputation (inner steps from the copy, outer gradients D_m, then the outer step on
  mean_k D_k(t-1) for `delayed`, on (D_m(t) + sum_{k != m} D_k(t-1)) / M for `eager`);
- `delayed` keeps the copies equal and does not move in the first round;
- `eager` with one worker is blocking DiLoCo (to float rounding);
- the communication is DiLoCo's: one all-reduce of the outer gradients per round."""
from __future__ import annotations

import copy

import pytest
import torch

from optrepro.dist.comm import Comm
from optrepro.dist.localsgd import DiLoCo, OverlappedDiLoCo
from optrepro.dist.world import World
from tests.reference.dist_toy import INNER, loss_of, make_inner, make_model

pytestmark = pytest.mark.reference

H, ROUNDS = 3, 4
OUTER = dict(lr=0.7, momentum=0.9, nesterov=True)


def run_ours(mode, m):
    alg = OverlappedDiLoCo(make_model(), make_inner, Comm(m, World()), list(range(m)), H, mode=mode,
                           outer_lr=OUTER["lr"], outer_momentum=OUTER["momentum"])
    history = []
    for s in range(H * ROUNDS):
        alg.step(lambda w, model, s=s: loss_of(model, w, s))
        if (s + 1) % H == 0:
            history.append([[p.detach().clone() for p in c.parameters()] for c in alg.copies])
    return alg, history


def run_literal(mode, m):
    copies = [make_model() for _ in range(m)]
    outers = [torch.optim.SGD(c.parameters(), **OUTER) for c in copies]
    replicas = [copy.deepcopy(c) for c in copies]
    inners = [torch.optim.AdamW(r.parameters(), **INNER) for r in replicas]
    zeros = [torch.zeros_like(p) for p in copies[0].parameters()]
    prev = [[z.clone() for z in zeros] for _ in range(m)]
    history = []
    for t in range(ROUNDS):
        for s in range(t * H, (t + 1) * H):
            for w in range(m):
                inners[w].zero_grad()
                loss_of(replicas[w], w, s).backward()
                inners[w].step()
        d = [[a.detach() - b.detach() for a, b in zip(c.parameters(), r.parameters())] for c, r in zip(copies, replicas)]
        for w in range(m):
            if mode == "delayed":
                upd = [sum(prev[k][j] for k in range(m)) / m for j in range(len(zeros))]
            else:
                upd = [(d[w][j] + sum(prev[k][j] for k in range(m) if k != w)) / m for j in range(len(zeros))]
            for p, u in zip(copies[w].parameters(), upd):
                p.grad = u.clone()
            outers[w].step()
            with torch.no_grad():
                for q, p in zip(replicas[w].parameters(), copies[w].parameters()):
                    q.copy_(p)
        prev = d
        history.append([[p.detach().clone() for p in c.parameters()] for c in copies])
    return history


@pytest.mark.parametrize("mode", ["delayed", "eager"])
def test_rounds_are_the_literal_equations(mode):
    _, ours = run_ours(mode, 3)
    ref = run_literal(mode, 3)
    for t in range(ROUNDS):
        for w in range(3):
            for a, b in zip(ours[t][w], ref[t][w]):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_delayed_copies_agree_and_the_first_round_does_not_move():
    alg, hist = run_ours("delayed", 3)
    start = [p.detach() for p in make_model().parameters()]
    for a, b in zip(hist[0][0], start):
        assert torch.equal(a, b)
    for t in range(ROUNDS):
        for w in (1, 2):
            for a, b in zip(hist[t][0], hist[t][w]):
                assert torch.equal(a, b)
    eager = run_ours("eager", 3)[1]
    assert not torch.equal(eager[1][0][0], eager[1][1][0])  # eager copies differ by their local terms


def test_eager_with_one_worker_is_diloco():
    alg, _ = run_ours("eager", 1)
    ref = DiLoCo(make_model(), make_inner, Comm(1, World()), [0], H, outer_lr=OUTER["lr"],
                 outer_momentum=OUTER["momentum"])
    for s in range(H * ROUNDS):
        ref.step(lambda w, model, s=s: loss_of(model, w, s))
    for a, b in zip(alg.eval_model.parameters(), ref.eval_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)  # mean + (D - D_prev) = D up to rounding


def test_communication_is_one_all_reduce_of_the_outer_gradients_per_round():
    alg, _ = run_ours("eager", 3)
    n = sum(p.numel() for p in make_model().parameters())
    assert alg.comm.calls == ROUNDS and alg.comm.bytes == ROUNDS * n * 8


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="mode"):
        OverlappedDiLoCo(make_model(), make_inner, Comm(1, World()), [0], H, mode="lazy")
