"""4-bit AdamW (Li, Chen and Zhu, NeurIPS 2023): AdamW with both moments stored in 4 bits. The first
moment is quantized in blocks of 128 on a signed dynamic-exponent map; the second moment on a linear
map that excludes zero (the zero-point problem: a small v rounded to 0 makes m / sqrt(v) explode),
normalized in blocks of 128 (torchao's AdamW4bit) or rank-1 (min of row and column maxima; the
paper's default for matrices). The optimizer and the quantizers live in common.quant (8-bit states
are the same optimizer with bits=8), with a fused Triton kernel for the 4-bit step; this module
names it."""
from optrepro.quant.adamw import LowBitAdamW  # noqa: F401
