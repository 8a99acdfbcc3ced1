"""Tiny decoder-only language models from transformers configs (no weights downloaded: random
init, seeded): GPT-2 (learned positions, GELU MLP, tied embeddings) or Llama (RoPE, SwiGLU MLP,
RMSNorm; tied embeddings here too so both count parameters the same way)."""
from __future__ import annotations

from torch import nn

ARCHS = ("gpt2", "llama")


class TinyLM(nn.Module):
    """Wraps a transformers causal LM so forward(ids) returns logits."""

    def __init__(self, vocab_size: int, context: int, d_model: int = 64, n_layer: int = 2, n_head: int = 4,
                 arch: str = "gpt2"):
        super().__init__()
        self.arch, self.d_model, self.vocab_size = arch, d_model, vocab_size
        if arch == "gpt2":
            from transformers import GPT2Config, GPT2LMHeadModel
            cfg = GPT2Config(vocab_size=vocab_size, n_positions=context, n_embd=d_model, n_layer=n_layer,
                             n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                             bos_token_id=0, eos_token_id=0)
            self.gpt = GPT2LMHeadModel(cfg)
        elif arch == "llama":
            from transformers import LlamaConfig, LlamaForCausalLM
            cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=int(8 * d_model / 3),
                              num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_head,
                              max_position_embeddings=context, tie_word_embeddings=True,
                              bos_token_id=0, eos_token_id=0, pad_token_id=None)
            self.gpt = LlamaForCausalLM(cfg)
        else:
            from optrepro.errors import ConfigError
            raise ConfigError(f"arch '{arch}' unknown; valid: {', '.join(ARCHS)}")

    def forward(self, ids):
        return self.gpt(input_ids=ids).logits

    def n_params(self, embedding: bool = False, head: bool = False) -> int:
        return count_params(self, embedding, head)


def count_params(model: nn.Module, embedding: bool = False, head: bool = False) -> int:
    """Parameters the scaling literature counts: non-embedding (Kaplan: no token or position
    embedding, and with tied weights no last layer either), plus the last layer's d x V when
    `head` (Porian et al.'s 'standard' count), plus the embeddings when `embedding`. Embeddings are
    the parameters named wte, wpe or embed_tokens; the model has `d_model` and `vocab_size`."""
    emb = {id(p) for n, p in model.named_parameters() if "wte" in n or "wpe" in n or "embed_tokens" in n}
    n = sum(p.numel() for p in model.parameters() if id(p) not in emb)
    if head:
        n += model.d_model * model.vocab_size
    if embedding:
        n += sum(p.numel() for p in model.parameters() if id(p) in emb)
    return int(n)


TinyGPT = TinyLM


def tiny_gpt(vocab_size: int, context: int, d_model: int = 64, n_layer: int = 2, n_head: int = 4,
             arch: str = "gpt2") -> TinyLM:
    return TinyLM(vocab_size, context, d_model, n_layer, n_head, arch)
