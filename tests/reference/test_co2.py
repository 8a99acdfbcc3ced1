"""CO2 (common.dist.localsgd.CO2) against its equations and against torch's local SGD, on the small
classifier of the local-SGD tests (inner AdamW):
- the literal rounds: every copy after every round equals a direct recomputation of inner steps, the
  outer gradients, and the authors' outer step m <- mu m + mean_k D_k(t - 1) / lambda, m <- clamp(m,
  -c, c), theta <- theta - alpha m;
- with lambda = 1 and no clip it is the delayed overlap with heavy-ball outer SGD (torch's SGD);
- the clip binds: the momentum never leaves [-c, c] and the result differs from the unclipped one;
- one all-reduce of the outer gradients per round;
- the local-SGD baseline: DiLoCo with outer lr 1 and no momentum is torch's PostLocalSGDOptimizer
  (PeriodicModelAverager) on 2 gloo processes, to float rounding.
"""
from __future__ import annotations

import copy

import pytest
import torch

from optrepro.dist.comm import Comm
from optrepro.dist.localsgd import CO2, DiLoCo, OverlappedDiLoCo
from optrepro.dist.spawn import spawn
from optrepro.dist.world import World
from tests.reference.dist_toy import INNER, loss_of, make_inner, make_model

pytestmark = pytest.mark.reference
H, ROUNDS, M = 3, 5, 3


def run_ours(m=M, **kw):
    alg = CO2(make_model(), make_inner, Comm(m, World()), list(range(m)), H, **kw)
    history = []
    for s in range(H * ROUNDS):
        alg.step(lambda w, model, s=s: loss_of(model, w, s))
        if (s + 1) % H == 0:
            history.append([p.detach().clone() for p in alg.eval_model.parameters()])
    return alg, history


def run_literal(alpha, mu, lam, c):
    theta = make_model()
    replicas = [copy.deepcopy(theta) for _ in range(M)]
    inners = [torch.optim.AdamW(r.parameters(), **INNER) for r in replicas]
    mom = [torch.zeros_like(p) for p in theta.parameters()]
    prev = [torch.zeros_like(p) for p in theta.parameters()]
    history = []
    for t in range(ROUNDS):
        for s in range(t * H, (t + 1) * H):
            for w in range(M):
                inners[w].zero_grad()
                loss_of(replicas[w], w, s).backward()
                inners[w].step()
        d = [sum(a.detach() - r_p.detach() for r_p in rp) / M
             for a, rp in zip(theta.parameters(), zip(*[r.parameters() for r in replicas]))]
        with torch.no_grad():
            for j, p in enumerate(theta.parameters()):
                mom[j] = mu * mom[j] + prev[j] / lam
                if c > 0:
                    mom[j] = mom[j].clamp(-c, c)
                p -= alpha * mom[j]
            for r in replicas:
                for q, p in zip(r.parameters(), theta.parameters()):
                    q.copy_(p)
        prev = d
        history.append([p.detach().clone() for p in theta.parameters()])
    return history


@pytest.mark.parametrize("lam,c", [(1.0, 0.0), (2.0, 0.0), (1.5, 0.01)])
def test_rounds_are_the_literal_equations(lam, c):
    _, ours = run_ours(outer_lr=0.8, outer_momentum=0.5, gap_penalty=lam, clip=c)
    ref = run_literal(0.8, 0.5, lam, c)
    for a_round, b_round in zip(ours, ref):
        for a, b in zip(a_round, b_round):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_no_penalty_no_clip_is_the_delayed_overlap_with_heavy_ball():
    alg, _ = run_ours(outer_lr=0.8, outer_momentum=0.5)
    ref = OverlappedDiLoCo(make_model(), make_inner, Comm(M, World()), list(range(M)), H, outer_lr=0.8,
                           outer_momentum=0.5, nesterov=False, mode="delayed")
    for s in range(H * ROUNDS):
        ref.step(lambda w, model, s=s: loss_of(model, w, s))
    for a, b in zip(alg.eval_model.parameters(), ref.eval_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_the_clip_binds_and_communication_is_one_all_reduce_per_round():
    clipped, h1 = run_ours(outer_lr=0.8, outer_momentum=0.5, clip=0.002)
    free, h2 = run_ours(outer_lr=0.8, outer_momentum=0.5)
    assert all(float(b.abs().max()) <= 0.002 for b in clipped.bufs[0])
    assert max(float(b.abs().max()) for b in free.bufs[0]) > 0.002
    assert not torch.equal(h1[-1][0], h2[-1][0])
    n = sum(p.numel() for p in make_model().parameters())
    assert clipped.comm.calls == ROUNDS and clipped.comm.bytes == ROUNDS * n * 8
    with pytest.raises(ValueError, match="gap_penalty"):
        CO2(make_model(), make_inner, Comm(1, World()), [0], H, gap_penalty=0.0)


def _post_local_sgd(w, steps):
    """Rank w of 2: torch's PostLocalSGDOptimizer (inner AdamW, parameters averaged every H steps)."""
    from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
    from torch.distributed.optim import PostLocalSGDOptimizer
    model = make_model()
    # the averager counts from 0 and averages at counts warmup, warmup + H, ...: warmup H - 1 averages
    # after the H-th, 2H-th, ... step, as local SGD does
    opt = PostLocalSGDOptimizer(torch.optim.AdamW(model.parameters(), **INNER),
                                PeriodicModelAverager(period=H, warmup_steps=H - 1))
    for s in range(steps):
        opt.zero_grad()
        loss_of(model, w.rank, s).backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]  # numpy: pickled by value through the queue


def test_local_sgd_row_is_torch_post_local_sgd():
    ranks = spawn(_post_local_sgd, 2, H * ROUNDS, timeout_s=300)
    ours = DiLoCo(make_model(), make_inner, Comm(2, World()), [0, 1], H, outer_lr=1.0, outer_momentum=0.0,
                  nesterov=False)
    for s in range(H * ROUNDS):
        ours.step(lambda w, model, s=s: loss_of(model, w, s))
    for r in ranks:
        for a, b in zip(ours.eval_model.parameters(), r):
            torch.testing.assert_close(a.detach(), torch.from_numpy(b), rtol=1e-12, atol=1e-14)
