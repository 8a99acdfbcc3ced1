"""A small pre-LayerNorm decoder-only transformer whose architectural choices switch one at a time,
for ablation studies (million_gpu_hours_2022): how positions enter (`learned` absolute embeddings,
`rotary` on queries and keys, `alibi` linear attention biases, or `none`), a LayerNorm right after
the token embedding (`emb_norm`, BLOOM's), and the MLP (`gelu`, 4d wide, or `swiglu`, 8d/3 wide so
that both hold 8 d^2 weights). Everything else is GPT-2's: tied input and output embeddings, GELU
with the tanh approximation, N(0, 0.02) initialisation with the residual projections scaled by
1 / sqrt(2 n_layer), no dropout.

Tested against transformers (tests/reference/test_variant_gpt.py): with learned positions, GELU and
no embedding norm it computes GPT-2's logits, with ALiBi and the embedding norm BLOOM's, both from
the same weights; its rotary embedding is Llama's."""
from __future__ import annotations

import math

import torch
from torch import nn

POSITIONS = ("learned", "rotary", "alibi", "none")
MLPS = ("gelu", "swiglu")


def check_variant(d_model: int, n_head: int, pos: str, mlp: str) -> None:
    """ConfigError (exit 2) for settings VariantGPT cannot build; configs call it before any run."""
    from optrepro.errors import ConfigError
    if pos not in POSITIONS:
        raise ConfigError(f"pos '{pos}' unknown; valid: {', '.join(POSITIONS)}")
    if mlp not in MLPS:
        raise ConfigError(f"mlp '{mlp}' unknown; valid: {', '.join(MLPS)}")
    if d_model % n_head or (pos == "rotary" and (d_model // n_head) % 2):
        raise ConfigError(f"d_model {d_model} must split into {n_head} heads (of even size for rotary)")


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Press et al.'s head slopes: the geometric sequence 2^(-8/n), 2^(-16/n), ... for n a power of
    two; otherwise those of the next lower power of two, then every other slope of the next higher."""
    def pow2(n):
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]
    if math.log2(n_head).is_integer():
        s = pow2(n_head)
    else:
        lower = 2 ** math.floor(math.log2(n_head))
        s = pow2(lower) + pow2(2 * lower)[0::2][: n_head - lower]
    return torch.tensor(s)


def rotary_tables(head_dim: int, length: int, base: float = 10000.0):
    """cos, sin of shape (length, head_dim): frequencies base^(-2i/head_dim), each used for the two
    halves of the head (the 'rotate half' convention of GPT-NeoX and Llama)."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = torch.outer(torch.arange(length, dtype=torch.float32), inv)
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos(), ang.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (..., T, head_dim) rotated by position: x cos + rotate_half(x) sin."""
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


class Attention(nn.Module):
    def __init__(self, d_model: int, n_head: int, pos: str, context: int):
        super().__init__()
        self.n_head, self.hd, self.pos = n_head, d_model // n_head, pos
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        if pos == "alibi":
            self.register_buffer("slopes", alibi_slopes(n_head), persistent=False)
        if pos == "rotary":
            cos, sin = rotary_tables(self.hd, context)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (t.view(B, T, self.n_head, self.hd).transpose(1, 2) for t in self.qkv(x).split(D, dim=-1))
        if self.pos == "rotary":
            q, k = apply_rotary(q, self.cos[:T], self.sin[:T]), apply_rotary(k, self.cos[:T], self.sin[:T])
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.hd)
        i = torch.arange(T, device=x.device)
        if self.pos == "alibi":  # -m (i - j) for key j at or before query i
            scores = scores + self.slopes.view(1, -1, 1, 1) * (i.view(1, -1) - i.view(-1, 1)).to(scores.dtype)
        scores = scores.masked_fill(i.view(1, -1) > i.view(-1, 1), float("-inf"))
        out = scores.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, d_model: int, kind: str):
        super().__init__()
        self.kind = kind
        if kind == "gelu":
            self.fc, self.out = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)
        else:
            h = int(8 * d_model / 3)
            self.gate, self.up = nn.Linear(d_model, h, bias=False), nn.Linear(d_model, h, bias=False)
            self.out = nn.Linear(h, d_model, bias=False)

    def forward(self, x):
        if self.kind == "gelu":
            return self.out(nn.functional.gelu(self.fc(x), approximate="tanh"))
        return self.out(nn.functional.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, d_model, n_head, pos, mlp, context):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d_model), Attention(d_model, n_head, pos, context)
        self.ln2, self.mlp = nn.LayerNorm(d_model), MLP(d_model, mlp)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class VariantGPT(nn.Module):
    def __init__(self, vocab_size: int, context: int, d_model: int = 64, n_layer: int = 2, n_head: int = 4,
                 pos: str = "learned", emb_norm: bool = False, mlp: str = "gelu"):
        super().__init__()
        check_variant(d_model, n_head, pos, mlp)
        self.d_model, self.vocab_size, self.context = d_model, vocab_size, context
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(context, d_model) if pos == "learned" else None
        self.emb_ln = nn.LayerNorm(d_model) if emb_norm else None
        self.blocks = nn.ModuleList(Block(d_model, n_head, pos, mlp, context) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p) if ("ln" in name and name.endswith("weight")) else nn.init.zeros_(p)
            else:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        if T > self.context:
            raise ValueError(f"sequence of {T} tokens is longer than the context {self.context}")
        x = self.wte(ids)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=ids.device))
        if self.emb_ln is not None:
            x = self.emb_ln(x)
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.T

    def n_params(self, embedding: bool = False, head: bool = False) -> int:
        """As TinyLM.n_params (common.models.lm.count_params): the embedding LayerNorm counts as
        non-embedding."""
        from optrepro.models.lm import count_params
        return count_params(self, embedding, head)
