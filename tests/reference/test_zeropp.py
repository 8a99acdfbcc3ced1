"""ZeRO-3 and ZeRO++ (common.dist.zero.Zero3) against data parallelism and their own formulas, on the
small classifier of the local-SGD tests (float32 here, as ZeRO's flat shards are) with AdamW:
- without ZeRO++'s options, sharding changes nothing: every step's parameters equal synchronous data
  parallelism's (common.dist.localsgd.DataParallel, DDP's arithmetic);
- with qwZ the weights everybody computes with are each block's int8 rounding (error at most half a
  step, absmax / 254), and qgZ's int4 rounding errs by at most half a step (absmax / 14); one qgZ step
  with SGD moves each shard by minus the mean of the dequantized int4 gradients;
- the volume counted per step is the formula: ZeRO-3 three times the model, all across nodes;
  ZeRO++ int8 weights (1 byte + 4 per block) twice, the backward one inside the node with hpZ, and
  int4 gradients (half a byte + 4 per block).
"""
from __future__ import annotations

import pytest
import torch

from optrepro.dist.comm import Comm
from optrepro.dist.localsgd import DataParallel
from optrepro.dist.world import World
from optrepro.dist.zero import Zero3
from optrepro.quant import dequantize, quantize, symmetric_map
from tests.reference.dist_toy import INNER, loss_of, make_model

pytestmark = pytest.mark.reference
M, STEPS, BLOCK = 4, 6, 32


def model32():
    return make_model().float()


def loss32(model, w, s):
    g = torch.Generator().manual_seed(1000 * w + s)
    x = torch.randn(8, 6, generator=g)
    return torch.nn.functional.cross_entropy(model(x), torch.randint(0, 3, (8,), generator=g))


def make_opt(params):
    return torch.optim.AdamW(params, **INNER, foreach=False), None


def zero(**kw):
    return Zero3(model32(), make_opt, Comm(M, World()), list(range(M)), block=BLOCK, **kw)


def test_sharding_alone_is_data_parallelism():
    z = zero(node_size=2)
    model = model32()
    dp = DataParallel(model, torch.optim.AdamW(model.parameters(), **INNER, foreach=False), None,
                      Comm(M, World()), list(range(M)))
    for s in range(STEPS):
        a = z.step(lambda w, m, s=s: loss32(m, w, s))
        b = dp.step(lambda w, m, s=s: loss32(m, w, s))
        assert a == b  # the same losses: the same weights at every step
    z.sync_eval()
    for p, q in zip(z.eval_model.parameters(), dp.eval_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_quantized_weights_and_gradients_are_block_roundings():
    z = zero(quant_weights=True, quant_grads=True)
    flat, _ = z.gather()
    true = torch.cat([s.detach() for s in z.shards])
    blocks = true.view(-1, BLOCK)
    err = (flat - true).view(-1, BLOCK).abs().amax(1)
    assert bool((err <= blocks.abs().amax(1) / 254 * (1 + 1e-6)).all()) and float(err.max()) > 0
    g = torch.randn(z.padded)
    q = quantize(g, symmetric_map(4), 4, BLOCK)
    step = g.view(-1, BLOCK).abs().amax(1) / 7
    assert bool(((dequantize(q, symmetric_map(4)) - g).view(-1, BLOCK).abs().amax(1) <= step / 2 * (1 + 1e-6)).all())
    free = zero()
    for s in range(STEPS):
        z.step(lambda w, m, s=s: loss32(m, w, s))
        free.step(lambda w, m, s=s: loss32(m, w, s))
    z.sync_eval()
    free.sync_eval()
    diff = max(float((p - q).detach().abs().max()) for p, q in zip(z.eval_model.parameters(), free.eval_model.parameters()))
    assert diff > 0  # the roundings reach the weights (how much they cost is the mini table's question)


def test_volume_is_the_formula():
    p = zero(node_size=2).padded
    full, w8, g4 = 4 * p, p + 4 * p // BLOCK, p // 2 + 4 * p // BLOCK
    cases = {
        (False, False, False): (3 * full, 0),
        (True, False, False): (2 * w8 + full, 0),
        (True, True, True): (w8 + g4, w8),
        (False, True, False): (2 * full, full),
    }
    for (qw, hp, qg), (cross, intra) in cases.items():
        z = zero(quant_weights=qw, hierarchical=hp, quant_grads=qg, node_size=2)
        for s in range(STEPS):
            z.step(lambda w, m, s=s: loss32(m, w, s))
        assert (z.cross_bytes, z.intra_bytes) == (STEPS * cross, STEPS * intra), (qw, hp, qg)
    one_node = zero(node_size=M)
    one_node.step(lambda w, m: loss32(m, w, 0))
    assert one_node.cross_bytes == 0 and one_node.intra_bytes == 3 * full
    assert zero(hierarchical=True, node_size=2).secondary_bytes == 4 * p // 2
    with pytest.raises(ValueError, match="node_size"):
        zero(node_size=3)


def test_one_qgz_step_averages_the_int4_gradients():
    """SGD with lr 1: after one step each shard moved by minus the mean of the workers' dequantized int4
    gradients, written out here."""
    z = Zero3(model32(), lambda ps: (torch.optim.SGD(ps, lr=1.0), None), Comm(M, World()), list(range(M)),
              quant_grads=True, block=BLOCK)
    before = torch.cat([s.detach().clone() for s in z.shards])
    ref = model32()
    grads = []
    for w in range(M):
        ref.zero_grad()
        loss32(ref, w, 0).backward()
        g = torch.zeros(z.padded)
        g[:z.numel] = torch.cat([p.grad.reshape(-1) for p in ref.parameters()])
        grads.append(dequantize(quantize(g, symmetric_map(4), 4, BLOCK), symmetric_map(4)))
    want = before - sum(grads[1:], grads[0].clone()) / M
    z.step(lambda w, m: loss32(m, w, 0))
    torch.testing.assert_close(torch.cat([s.detach() for s in z.shards]), want, rtol=0, atol=1e-7)
