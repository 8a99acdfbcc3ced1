"""A tiny GPT from a transformers config (no weights downloaded: random init, seeded)."""
from __future__ import annotations

from torch import nn


class TinyGPT(nn.Module):
    """Wraps GPT2LMHeadModel so forward(ids) returns logits."""

    def __init__(self, vocab_size: int, context: int, d_model: int = 64, n_layer: int = 2, n_head: int = 4):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(vocab_size=vocab_size, n_positions=context, n_embd=d_model, n_layer=n_layer,
                         n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        self.gpt = GPT2LMHeadModel(cfg)

    def forward(self, ids):
        return self.gpt(input_ids=ids).logits


def tiny_gpt(vocab_size: int, context: int, d_model: int = 64, n_layer: int = 2, n_head: int = 4) -> TinyGPT:
    return TinyGPT(vocab_size, context, d_model, n_layer, n_head)
