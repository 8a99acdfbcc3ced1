"""Block-wise quantization of optimizer states (Dettmers et al. 2022, 8-bit; Li et al. 2023, 4-bit).

A tensor is cut into blocks of `block_size` consecutive elements; each block is divided by its
largest magnitude (its `scale`, kept in float32) and every element is replaced by the index of the
nearest value of a sorted code book `qmap` in [-1, 1] (or [0, 1]): 2^bits codes, stored one per byte
for 8 bits and two per byte for 4 bits (the first element in the high nibble). `quantize_rank1`
normalizes a matrix instead by min(row max, column max) of its magnitudes, element by element (the
4-bit paper's rank-1 normalization for the second moment: m + n scales, and an outlier only
affects its own row and column).

Code books:
- `dynamic_map(bits, exponent_bits, signed)`: the dynamic-exponent map of Dettmers (2016): for each
  exponent e = 0 .. E-1, the mid-points of an even grid on [0.1, 1] scaled by 10^(e - E + 1), with
  more fraction points at larger exponents, plus 0 and 1 (8 bits: E = 7; 4-bit first moment: E = 3);
- `linear_map(bits, signed, zero)`: an even grid; `zero=False` leaves 0 out (the 4-bit paper's fix of
  the zero-point problem for the second moment: a small v rounded to 0 makes the update m/sqrt(v)
  explode).

Rounding is to the nearest code (a tie goes up), or `stochastic`: up with probability equal to the
distance from the code below over the gap. tests/reference/test_quant.py checks the maps and the
codes against torchao's quantizers bit for bit."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@functools.lru_cache(maxsize=None)
def _dynamic_values(bits: int, exponent_bits: int, signed: bool) -> tuple:
    magnitude_bits = bits - 1  # the sign bit, or (unsigned) one more fraction bit below
    values = []
    for e in range(exponent_bits):
        n = 2 ** (e + magnitude_bits - exponent_bits + (0 if signed else 1))
        grid = torch.linspace(0.1, 1, n + 1)
        mids = ((grid[:-1] + grid[1:]) / 2 * 10.0 ** (e - exponent_bits + 1)).tolist()
        values += mids + ([-v for v in mids] if signed else [])
    extra = 2 ** (magnitude_bits - exponent_bits) - 1  # codes left when no exponent bit is set
    if extra > 0:
        grid = torch.linspace(0.1, 1, extra + 1)
        mids = ((grid[:-1] + grid[1:]) / 2).tolist()
        values += mids + ([-v for v in mids] if signed else [])
    values += [0.0, 1.0]
    if len(values) != 2 ** bits:
        raise ValueError(f"dynamic map with {bits} bits and {exponent_bits} exponent bits has {len(values)} values")
    return tuple(sorted(values))


def dynamic_map(bits: int = 8, exponent_bits: int = 7, signed: bool = True) -> torch.Tensor:
    """The dynamic-exponent code book (float32, sorted, 2^bits values)."""
    return torch.tensor(_dynamic_values(bits, exponent_bits, signed), dtype=torch.float32)


def linear_map(bits: int = 4, signed: bool = False, zero: bool = True) -> torch.Tensor:
    """An even code book on [-1, 1] (signed) or [0, 1]; `zero=False` (unsigned only): k / 2^bits for
    k = 1 .. 2^bits, no zero."""
    n = 2 ** bits
    if signed:
        if not zero:
            raise ValueError("linear_map: zero=False is for unsigned maps")
        return torch.linspace(-1, 1, n)
    return torch.linspace(0, 1, n) if zero else torch.linspace(0, 1, n + 1)[1:]


def symmetric_map(bits: int) -> torch.Tensor:
    """The symmetric uniform grid k / (2^(bits-1) - 1), |k| <= 2^(bits-1) - 1 (2^bits - 1 values, zero
    included): block-wise absmax quantization onto it is the usual signed integer quantization
    (int8: round(127 x / absmax)), as ZeRO++ communicates weights and gradients."""
    q = 2 ** (bits - 1) - 1
    return torch.arange(-q, q + 1, dtype=torch.float32) / q


@dataclass
class Quantized:
    """A quantized tensor: `codes` (uint8, packed two per byte for 4 bits), `scale` (one float32 per
    block; for rank-1 normalization, `block_size` 0, the m row maxima then the n column maxima) and
    what is needed to read it back."""
    codes: torch.Tensor
    scale: torch.Tensor
    shape: tuple
    bits: int
    block_size: int

    def tensors(self) -> list[torch.Tensor]:
        return [self.codes, self.scale]


def nearest_codes(y: torch.Tensor, qmap: torch.Tensor, stochastic: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Index of the nearest `qmap` value for each element of y (a tie goes up), or with `stochastic`
    the code above with probability (y - below) / (above - below). int64."""
    n = qmap.numel()
    lo = (torch.searchsorted(qmap, y.contiguous(), right=True) - 1).clamp_(0, n - 1)
    hi = (lo + 1).clamp_(max=n - 1)
    q_lo, q_hi = qmap[lo], qmap[hi]
    if stochastic:
        gap = (q_hi - q_lo).clamp_min(1e-30)
        u = torch.rand(y.shape, generator=generator, device=y.device)
        up = u < (y - q_lo) / gap
    else:
        up = (y - q_lo) >= (q_hi - q_lo) * 0.5
    return torch.where(up, hi, lo)


def pack4(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte, the even-indexed element in the high nibble."""
    c = codes.to(torch.uint8).view(-1, 2)
    return (c[:, 0] << 4) | c[:, 1]


def unpack4(packed: torch.Tensor) -> torch.Tensor:
    return torch.stack([packed >> 4, packed & 0b1111], dim=-1).view(-1)


def check_block_size(block_size) -> None:
    """Blocks hold whole bytes of 4-bit codes: an even integer >= 2."""
    if not (isinstance(block_size, int) and block_size >= 2 and block_size % 2 == 0):
        raise ValueError(f"block_size must be an even integer >= 2, got {block_size!r}")


def check_quantizable(x: torch.Tensor, bits: int, block_size: int) -> None:
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    check_block_size(block_size)
    if x.numel() % block_size:
        raise ValueError(f"a tensor of {x.numel()} elements does not split into blocks of {block_size}")


def _encode(y: torch.Tensor, qmap: torch.Tensor, bits: int, stochastic: bool, generator) -> torch.Tensor:
    codes = nearest_codes(y.reshape(-1), qmap.to(y.device), stochastic, generator)
    return pack4(codes) if bits == 4 else codes.to(torch.uint8)


def quantize(x: torch.Tensor, qmap: torch.Tensor, bits: int, block_size: int, stochastic: bool = False,
             generator: torch.Generator | None = None) -> Quantized:
    """Block-wise absmax quantization of x onto `qmap` (x.numel() a multiple of block_size)."""
    check_quantizable(x, bits, block_size)
    blocks = x.detach().float().reshape(-1, block_size)
    scale = blocks.abs().amax(dim=1).clamp_min(1e-12)
    return Quantized(_encode(blocks / scale[:, None], qmap, bits, stochastic, generator), scale, tuple(x.shape),
                     bits, block_size)


def rank1_scale(scale: torch.Tensor, shape: tuple) -> torch.Tensor:
    """The (m, n) element-wise scale min(r_i, c_j) from the stored row and column maxima."""
    m = shape[0]
    return torch.minimum(scale[:m, None], scale[None, m:])


def quantize_rank1(x: torch.Tensor, qmap: torch.Tensor, bits: int, stochastic: bool = False,
                   generator: torch.Generator | None = None) -> Quantized:
    """Rank-1 normalized quantization of a matrix: x_ij / min(max_j |x_ij|, max_i |x_ij|)."""
    if x.ndim != 2:
        raise ValueError(f"rank-1 normalization takes a matrix, got shape {tuple(x.shape)}")
    check_quantizable(x, bits, 2)
    a = x.detach().float().abs()
    scale = torch.cat([a.amax(dim=1), a.amax(dim=0)]).clamp_min(1e-12)
    y = x.detach().float() / rank1_scale(scale, tuple(x.shape))
    return Quantized(_encode(y, qmap, bits, stochastic, generator), scale, tuple(x.shape), bits, 0)


def dequantize(q: Quantized, qmap: torch.Tensor) -> torch.Tensor:
    """The float32 tensor q stands for."""
    codes = unpack4(q.codes) if q.bits == 4 else q.codes
    values = qmap.to(q.codes.device)[codes.long()]
    if q.block_size == 0:
        return values.view(q.shape) * rank1_scale(q.scale, q.shape)
    return (values.view(-1, q.block_size) * q.scale[:, None]).view(q.shape)


def state_bytes(numel: int, bits: int, block_size: int) -> int:
    """Bytes of one quantized state of `numel` elements: codes plus one float32 scale per block."""
    return math.ceil(numel * bits / 8) + 4 * (numel // block_size)
