"""The 4-bit AdamW step (common.quant.adamw) as one Triton kernel: each program takes one block of
`block_size` elements, unpacks and dequantizes both moments, updates them and the parameter in
float32, finds each block's new absmax scales and the nearest codes (the branch-free binary search
over the 16-entry code books, a tie rounding up, as the eager path), and packs the codes back, so
the moments never exist in float32 in memory.

It runs on CUDA, or on the CPU under TRITON_INTERPRET=1 (set before this module is imported), where
tests/reference/test_quant.py checks it against the eager step. The Triton import is deferred to
this module: the rest of common.quant needs no Triton."""
from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with torch on Linux
    triton = None

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def available(device: torch.device) -> bool:
    return triton is not None and (device.type == "cuda" or INTERPRET)


if triton is not None:
    @triton.jit
    def _nearest4(y, q_ptr):
        """Index of the nearest of 16 sorted codes (a tie rounds up)."""
        c = tl.where(y >= tl.load(q_ptr + 8), 8, 0)
        c += tl.where(y >= tl.load(q_ptr + c + 4), 4, 0)
        c += tl.where(y >= tl.load(q_ptr + c + 2), 2, 0)
        c += tl.where(y >= tl.load(q_ptr + c + 1), 1, 0)
        up = tl.minimum(c + 1, 15)
        lo_v = tl.load(q_ptr + c)
        hi_v = tl.load(q_ptr + up)
        return tl.where(y - lo_v >= (hi_v - lo_v) * 0.5, up, c)

    @triton.jit
    def _adamw4bit_kernel(p_ptr, g_ptr, mc_ptr, ms_ptr, vc_ptr, vs_ptr, qm_ptr, qv_ptr,
                          lr_wd, lr, w1, w2, eps, bc1, sqrt_bc2, HALF: tl.constexpr):
        blk = tl.program_id(0)
        byte = blk * HALF + tl.arange(0, HALF)
        ev, od = 2 * byte, 2 * byte + 1
        mc = tl.load(mc_ptr + byte).to(tl.int32)
        vc = tl.load(vc_ptr + byte).to(tl.int32)
        ms = tl.load(ms_ptr + blk)
        vs = tl.load(vs_ptr + blk)
        m_e = tl.load(qm_ptr + (mc >> 4)) * ms
        m_o = tl.load(qm_ptr + (mc & 15)) * ms
        v_e = tl.load(qv_ptr + (vc >> 4)) * vs
        v_o = tl.load(qv_ptr + (vc & 15)) * vs
        g_e = tl.load(g_ptr + ev)
        g_o = tl.load(g_ptr + od)
        m_e = m_e + w1 * (g_e - m_e)
        m_o = m_o + w1 * (g_o - m_o)
        v_e = v_e + w2 * (g_e * g_e - v_e)
        v_o = v_o + w2 * (g_o * g_o - v_o)
        p_e = tl.load(p_ptr + ev)
        p_o = tl.load(p_ptr + od)
        p_e = p_e - lr_wd * p_e
        p_o = p_o - lr_wd * p_o
        p_e = p_e - lr * (m_e / bc1) / (tl.sqrt(v_e) / sqrt_bc2 + eps)
        p_o = p_o - lr * (m_o / bc1) / (tl.sqrt(v_o) / sqrt_bc2 + eps)
        tl.store(p_ptr + ev, p_e)
        tl.store(p_ptr + od, p_o)
        ms = tl.maximum(tl.maximum(tl.max(tl.abs(m_e), axis=0), tl.max(tl.abs(m_o), axis=0)), 1e-12)
        vs = tl.maximum(tl.maximum(tl.max(tl.abs(v_e), axis=0), tl.max(tl.abs(v_o), axis=0)), 1e-12)
        tl.store(ms_ptr + blk, ms)
        tl.store(vs_ptr + blk, vs)
        mq = (_nearest4(m_e / ms, qm_ptr) << 4) | _nearest4(m_o / ms, qm_ptr)
        vq = (_nearest4(v_e / vs, qv_ptr) << 4) | _nearest4(v_o / vs, qv_ptr)
        tl.store(mc_ptr + byte, mq.to(tl.uint8))
        tl.store(vc_ptr + byte, vq.to(tl.uint8))


def fused_step(p, g, st, maps, lr, lr_wd, b1, b2, eps, bc1, sqrt_bc2, block_size) -> None:
    """One 4-bit AdamW step of p in place, its codes and scales in `st` updated in place."""
    if not available(p.device):
        raise RuntimeError("the fused 4-bit AdamW step needs CUDA, or TRITON_INTERPRET=1 set before import "
                           "(CPU, for tests); use fused=False")
    if p.dtype != torch.float32 or not p.is_contiguous():
        raise ValueError(f"the fused 4-bit AdamW step takes contiguous float32 parameters, got {p.dtype}")
    qm, qv = (m.to(p.device) for m in maps)
    n_blocks = p.numel() // block_size
    _adamw4bit_kernel[(n_blocks,)](
        p.view(-1), g.contiguous().view(-1).float(), st["exp_avg_codes"], st["exp_avg_scale"],
        st["exp_avg_sq_codes"], st["exp_avg_sq_scale"], qm, qv,
        lr_wd, lr, 1 - b1, 1 - b2, eps, bc1, sqrt_bc2, HALF=block_size // 2)
