"""common.quant against torchao's optimizer-state quantizers, bit for bit where the designs agree:
- the code books: the dynamic-exponent maps (8 bits, 4 bits; signed and unsigned) and the 4-bit
  linear map without zero equal torchao's create_dynamic_map / AdamW4bit's second-moment map;
- block-wise absmax quantization: the same scales and codes as torchao's scale_tensor and
  quantize_{8,4}bit_with_qmap, the same 4-bit packing, the same dequantized values;
- stochastic rounding lands on a neighbouring code and is unbiased;
- LowBitAdamW steps like torchao's AdamW4bit (block 128) and AdamW8bit (block 256), run eagerly,
  bit for bit; rank-1 normalization is the literal min of row and column maxima;
- the fused Triton kernel (TRITON_INTERPRET=1 on the CPU) equals the eager 4-bit step."""
import json
import os
import subprocess
import sys

import pytest
import torch

from optrepro.quant import (Quantized, dequantize, dynamic_map, linear_map, nearest_codes, pack4, quantize,
                            quantize_rank1, unpack4)
from optrepro.quant.adamw import LowBitAdamW

pytestmark = pytest.mark.reference

qu = pytest.importorskip("torchao.optim.quant_utils")


def _x(n=4096 * 3, seed=0, positive=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * torch.rand(n, generator=g) ** 3
    return x.abs() if positive else x


@pytest.mark.parametrize("signed,exponent_bits,bits", [(True, 7, 8), (False, 7, 8), (True, 3, 4), (False, 3, 4)])
def test_dynamic_maps_equal_torchao(signed, exponent_bits, bits):
    ref = torch.tensor(qu.create_dynamic_map(signed, exponent_bits, bits), dtype=torch.float32)
    assert torch.equal(dynamic_map(bits, exponent_bits, signed), ref)


def test_linear_map_without_zero_equals_adamw4bit_second_moment_map():
    from torchao.optim.subclass_4bit import get_qmap_unsigned
    assert torch.equal(linear_map(4, zero=False), torch.tensor(get_qmap_unsigned(), dtype=torch.float32))
    assert linear_map(4, zero=False).min() > 0 and linear_map(4).min() == 0


@pytest.mark.parametrize("bits,qmap,block,positive", [
    (8, dynamic_map(8, 7, True), 256, False), (8, dynamic_map(8, 7, False), 256, True),
    (4, dynamic_map(4, 3, True), 128, False), (4, linear_map(4, zero=False), 128, True)])
def test_codes_scales_and_values_equal_torchao(bits, qmap, block, positive):
    x = _x(positive=positive)
    scaled, scale = qu.scale_tensor(x, block)
    ref_codes = (qu.quantize_8bit_with_qmap if bits == 8 else qu.quantize_4bit_with_qmap)(scaled, qmap)
    q = quantize(x, qmap, bits, block)
    assert torch.equal(q.scale, scale)
    if bits == 4:
        assert torch.equal(q.codes, (ref_codes[::2] << 4) | ref_codes[1::2])  # torchao's packing
        assert torch.equal(unpack4(q.codes), ref_codes)
    else:
        assert torch.equal(q.codes, ref_codes)
    assert torch.equal(dequantize(q, qmap), qu.dequant_with_qmap(ref_codes, qmap, scale))
    assert q.codes.numel() == x.numel() * bits // 8


def test_rank1_normalization_is_the_literal_min_of_row_and_column_maxima():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(6, 10, generator=g) ** 4
    x[2, 7] = 50.0  # an outlier
    qmap = linear_map(4, zero=False)
    q = quantize_rank1(x, qmap, 4)
    scale = torch.tensor([[min(x[i].max().item(), x[:, j].max().item()) for j in range(10)] for i in range(6)])
    y = x / scale
    assert y.max() <= 1
    ref = torch.tensor([[qmap[(qmap - y[i, j]).abs().argmin()].item() for j in range(10)] for i in range(6)])
    torch.testing.assert_close(dequantize(q, qmap), ref * scale)
    # the outlier only coarsens its own row and column; block-wise scaling coarsens its whole block
    far = torch.ones(6, 10, dtype=torch.bool)
    far[2], far[:, 7] = False, False
    err_rank1 = (dequantize(q, qmap) - x).abs()[far].max()
    err_block = (dequantize(quantize(x, qmap, 4, 60), qmap) - x).abs()[far].max()
    assert err_rank1 < err_block / 5


def test_pack4_round_trips():
    c = torch.randint(0, 16, (64,), dtype=torch.uint8)
    assert torch.equal(unpack4(pack4(c)), c)


def test_stochastic_rounding_is_unbiased_between_neighbours():
    qmap = linear_map(4, signed=True)
    y = torch.full((20000,), 0.3)
    codes = nearest_codes(y, qmap, stochastic=True, generator=torch.Generator().manual_seed(0))
    vals = qmap[codes]
    below, above = qmap[qmap <= 0.3].max(), qmap[qmap > 0.3].min()
    assert set(vals.unique().tolist()) == {below.item(), above.item()}
    assert abs(vals.mean().item() - 0.3) < 3 * (above - below).item() / 2 / 20000 ** 0.5


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(64, 128, generator=g), torch.randn(96, 64, generator=g), torch.randn(64, generator=g)]


@pytest.mark.parametrize("bits,block,cls", [(4, 128, "AdamW4bit"), (8, 256, "AdamW8bit")])
def test_lowbit_adamw_steps_like_torchao(bits, block, cls, monkeypatch):
    import torchao.optim
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)  # torchao's step runs eagerly
    ours = [torch.nn.Parameter(p) for p in _params()]
    theirs = [torch.nn.Parameter(p.clone()) for p in _params()]
    kw = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    a = LowBitAdamW(ours, bits=bits, block_size=block, **kw)
    b = getattr(torchao.optim, cls)(theirs, block_size=block, **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        for p, q in zip(ours, theirs):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    for p, q in zip(ours, theirs):  # the same float32 arithmetic: bit for bit
        assert torch.equal(p.detach(), q.detach())
    st_a, st_b = a.state[ours[0]], b.state[theirs[0]]  # 8192 elements: quantized in both
    m_ref = st_b["exp_avg"].dequantize()
    m_ours = dequantize(Quantized(st_a["exp_avg_codes"], st_a["exp_avg_scale"], (64, 128), bits, block), a.maps[0])
    assert torch.equal(m_ours, m_ref)
    assert "exp_avg" in a.state[ours[2]]  # a small tensor keeps float32 moments, as torchao


FUSED_CHECK = """
import json
import torch
from optrepro.quant.adamw import LowBitAdamW
g = torch.Generator().manual_seed(3)
shapes = [(64, 128), (96, 64)]
init = [torch.randn(s, generator=g) for s in shapes]
kw = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
eager = LowBitAdamW([torch.nn.Parameter(p.clone()) for p in init], **kw)
fused = LowBitAdamW([torch.nn.Parameter(p.clone()) for p in init], fused=True, **kw)
for _ in range(5):
    grads = [torch.randn(s, generator=g) for s in shapes]
    for opt in (eager, fused):
        for p, gr in zip(opt.param_groups[0]["params"], grads):
            p.grad = gr.clone()
        opt.step()
out = {"param": 0.0, "codes_equal": 1.0, "scale_rel": 0.0}
for p, q in zip(eager.param_groups[0]["params"], fused.param_groups[0]["params"]):
    out["param"] = max(out["param"], (p - q).abs().max().item())
    for k in ("exp_avg", "exp_avg_sq"):
        a, b = eager.state[p], fused.state[q]
        out["codes_equal"] = min(out["codes_equal"], (a[k + "_codes"] == b[k + "_codes"]).float().mean().item())
        out["scale_rel"] = max(out["scale_rel"], ((a[k + "_scale"] - b[k + "_scale"]).abs() / a[k + "_scale"]).max().item())
print(json.dumps(out))
"""


def test_fused_triton_kernel_equals_the_eager_step():
    """In a fresh process: TRITON_INTERPRET must be set before Triton is first imported."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", FUSED_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["param"] < 1e-6 and out["codes_equal"] > 0.999 and out["scale_rel"] < 1e-5, out


def test_rank1_second_moment_tracks_adamw():
    p = torch.nn.Parameter(torch.randn(64, 128, generator=torch.Generator().manual_seed(6)))
    ref = torch.nn.Parameter(p.detach().clone())
    a = LowBitAdamW([p], v_scale="rank1", lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    b = torch.optim.AdamW([ref], lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        p.grad = torch.randn(64, 128, generator=g) * torch.linspace(0.1, 3, 128)  # column-structured scale
        ref.grad = p.grad.clone()
        a.step()
        b.step()
    st = a.state[p]
    assert st["exp_avg_sq_scale"].numel() == 64 + 128
    v = dequantize(Quantized(st["exp_avg_sq_codes"], st["exp_avg_sq_scale"], (64, 128), 4, 0), a.maps[1])
    v_ref = b.state[ref]["exp_avg_sq"]
    assert ((v - v_ref).abs() <= v_ref.abs().max() / 16).all()  # within a code step of the linear map
    torch.testing.assert_close(p.detach(), ref.detach(), rtol=0, atol=5e-3)


def test_bad_arguments_are_named():
    p = [torch.nn.Parameter(torch.zeros(4096))]
    with pytest.raises(ValueError, match="bits"):
        LowBitAdamW(p, bits=3)
    with pytest.raises(ValueError, match="v_map"):
        LowBitAdamW(p, v_map="log")
    with pytest.raises(ValueError, match="block_size"):
        LowBitAdamW(p, block_size=7)
    with pytest.raises(ValueError, match="v_scale"):
        LowBitAdamW(p, v_scale="rows")
    with pytest.raises(ValueError, match="fused"):
        LowBitAdamW(p, fused=True, v_scale="rank1")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_round_trips_codes_and_scales(dtype):
    p = torch.nn.Parameter(torch.randn(64, 128, generator=torch.Generator().manual_seed(8)).to(dtype))
    a = LowBitAdamW([p], lr=1e-2)
    p.grad = torch.randn(64, 128, generator=torch.Generator().manual_seed(9)).to(dtype)
    a.step()
    q = torch.nn.Parameter(p.detach().clone())
    b = LowBitAdamW([q], lr=1e-2)
    b.load_state_dict(a.state_dict())
    for k, v in a.state[p].items():
        w = b.state[q][k]
        assert (type(v) is type(w)) and (not torch.is_tensor(v) or (v.dtype == w.dtype and torch.equal(v, w))), k
    assert b.state[q]["exp_avg_codes"].dtype == torch.uint8 and b.state[q]["exp_avg_scale"].dtype == torch.float32
    for opt, x in ((a, p), (b, q)):
        x.grad = torch.ones_like(x)
        opt.step()
    assert torch.equal(p, q)
