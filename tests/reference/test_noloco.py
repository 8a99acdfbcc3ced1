"""NoLoCo (common.dist.localsgd.NoLoCo) against its equations, on M = 4 workers of a small
classifier with inner AdamW:
- the literal rounds: with random pairs, each worker's copy and momentum after every round equal a
  direct recomputation (delta_i <- mu delta_i + eta (mean of its pair's phi - theta_i));
- groups of all M workers are DiLoCo with heavy-ball outer momentum (torch SGD, no Nesterov);
- groups of one never communicate: each worker follows its own one-worker run;
- the partition is a function of (seed, round) and covers every worker once;
- weight_std is the literal root-mean-square spread of the copies."""
from __future__ import annotations

import copy

import pytest
import torch

from optrepro.dist.comm import Comm
from optrepro.dist.localsgd import DiLoCo, NoLoCo
from optrepro.dist.world import World
from tests.reference.dist_toy import INNER, loss_of, make_inner, make_model

pytestmark = pytest.mark.reference

H, ROUNDS, M = 3, 4, 4
ETA, MU = 0.7, 0.3


def run(alg, workers):
    for s in range(H * ROUNDS):
        alg.step(lambda w, model, s=s: loss_of(model, w, s))
    return alg


def noloco(group_size, m=M, workers=None, seed=5):
    workers = list(range(m)) if workers is None else workers
    return NoLoCo(make_model(), make_inner, Comm(m, World()), workers, H, ETA, MU, group_size, seed=seed)


def test_rounds_are_the_literal_equations():
    alg = run(noloco(2), range(M))
    thetas = [make_model() for _ in range(M)]
    replicas = [copy.deepcopy(t) for t in thetas]
    inners = [torch.optim.AdamW(r.parameters(), **INNER) for r in replicas]
    deltas = [[torch.zeros_like(p) for p in thetas[0].parameters()] for _ in range(M)]
    for rnd in range(ROUNDS):
        for s in range(rnd * H, (rnd + 1) * H):
            for w in range(M):
                inners[w].zero_grad()
                loss_of(replicas[w], w, s).backward()
                inners[w].step()
        groups = alg.groups(rnd)
        phi = [[p.detach().clone() for p in r.parameters()] for r in replicas]
        with torch.no_grad():
            for w in range(M):
                g = next(g for g in groups if w in g)
                for j, p in enumerate(thetas[w].parameters()):
                    mean = sum(phi[k][j] for k in g) / len(g)
                    deltas[w][j] = MU * deltas[w][j] + ETA * (mean - p)
                    p += deltas[w][j]
                for q, p in zip(replicas[w].parameters(), thetas[w].parameters()):
                    q.copy_(p)
    for w in range(M):
        for a, b in zip(alg.copies[w].parameters(), thetas[w].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    assert alg.comm.calls == ROUNDS


def test_one_group_of_all_is_diloco_with_heavy_ball_momentum():
    a = run(noloco(M), range(M))
    b = run(DiLoCo(make_model(), make_inner, Comm(M, World()), list(range(M)), H, outer_lr=ETA,
                   outer_momentum=MU, nesterov=False), range(M))
    for w in range(M):
        for p, q in zip(a.copies[w].parameters(), b.model.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_groups_of_one_never_communicate():
    a = run(noloco(1), range(M))
    assert a.comm.bytes == 0 and a.comm.calls == 0
    for w in range(M):  # worker w alone, with its own data stream
        solo = NoLoCo(make_model(), make_inner, Comm(1, World()), [0], H, ETA, MU, 1)
        for s in range(H * ROUNDS):
            solo.step(lambda _, model, s=s, w=w: loss_of(model, w, s))
        for p, q in zip(a.copies[w].parameters(), solo.copies[0].parameters()):
            assert torch.equal(p, q)


def test_groups_partition_the_workers_by_seed_and_round():
    alg = noloco(2, m=8)
    for rnd in range(5):
        gs = alg.groups(rnd)
        assert sorted(w for g in gs for w in g) == list(range(8)) and all(len(g) == 2 for g in gs)
        assert gs == noloco(2, m=8).groups(rnd)
    assert len({str(alg.groups(r)) for r in range(10)}) > 1
    assert alg.groups(0) != noloco(2, m=8, seed=6).groups(0) or alg.groups(1) != noloco(2, m=8, seed=6).groups(1)


def test_weight_std_is_the_literal_spread():
    alg = run(noloco(2), range(M))
    flat = torch.stack([torch.cat([p.detach().reshape(-1) for p in c.parameters()]) for c in alg.copies])
    ref = ((flat - flat.mean(dim=0)) ** 2).mean().sqrt().item()
    assert alg.weight_std() == pytest.approx(ref, rel=1e-10) and ref > 0


def test_group_size_must_divide_the_workers():
    with pytest.raises(ValueError, match="group_size"):
        noloco(3)
