"""common.models.variant_gpt against transformers, from the same weights:
- learned positions, GELU, no embedding norm: GPT-2 (GPT2LMHeadModel) logits;
- ALiBi with the embedding LayerNorm: BLOOM (BloomForCausalLM) logits (BLOOM adds slope x key
  position, ours -slope x distance: the two differ by a constant per query row, which the softmax
  removes);
- rotary: Llama's rotary embedding and apply_rotary_pos_emb on the same queries and keys;
- SwiGLU: the literal equation W_out (silu(W_gate x) * W_up x)."""
from __future__ import annotations

import pytest
import torch
from transformers import BloomConfig, BloomForCausalLM, GPT2Config, GPT2LMHeadModel
from transformers.models.llama.modeling_llama import LlamaConfig, LlamaRotaryEmbedding, apply_rotary_pos_emb

from optrepro.models.variant_gpt import VariantGPT, alibi_slopes, apply_rotary, rotary_tables

pytestmark = pytest.mark.reference

V, T, D, L, H = 37, 16, 32, 2, 4


def _ids(seed=0):
    return torch.randint(0, V, (3, T), generator=torch.Generator().manual_seed(seed))


def _perturb(model, seed=1):
    """Random LayerNorm gains and biases too, so that no parameter is checked at its init value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_learned_gelu_equals_gpt2():
    ours = VariantGPT(V, T, D, L, H, pos="learned", emb_norm=False, mlp="gelu")
    _perturb(ours)
    ref = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=T, n_embd=D, n_layer=L, n_head=H, resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new")).eval()
    with torch.no_grad():
        tr = ref.transformer
        tr.wte.weight.copy_(ours.wte.weight)
        tr.wpe.weight.copy_(ours.wpe.weight)
        for b, h in zip(ours.blocks, tr.h):  # GPT-2's Conv1D stores (in, out)
            h.ln_1.weight.copy_(b.ln1.weight), h.ln_1.bias.copy_(b.ln1.bias)
            h.attn.c_attn.weight.copy_(b.attn.qkv.weight.T), h.attn.c_attn.bias.copy_(b.attn.qkv.bias)
            h.attn.c_proj.weight.copy_(b.attn.proj.weight.T), h.attn.c_proj.bias.copy_(b.attn.proj.bias)
            h.ln_2.weight.copy_(b.ln2.weight), h.ln_2.bias.copy_(b.ln2.bias)
            h.mlp.c_fc.weight.copy_(b.mlp.fc.weight.T), h.mlp.c_fc.bias.copy_(b.mlp.fc.bias)
            h.mlp.c_proj.weight.copy_(b.mlp.out.weight.T), h.mlp.c_proj.bias.copy_(b.mlp.out.bias)
        tr.ln_f.weight.copy_(ours.ln_f.weight), tr.ln_f.bias.copy_(ours.ln_f.bias)
        x = _ids()
        torch.testing.assert_close(ours(x), ref(input_ids=x).logits, rtol=1e-5, atol=1e-5)


def test_alibi_embnorm_equals_bloom():
    ours = VariantGPT(V, T, D, L, H, pos="alibi", emb_norm=True, mlp="gelu")
    _perturb(ours)
    ref = BloomForCausalLM(BloomConfig(vocab_size=V, hidden_size=D, n_layer=L, n_head=H, hidden_dropout=0.0,
                                       attention_dropout=0.0)).eval()
    hd = D // H

    def fused(w):  # ours: [q of all heads; k; v]; BLOOM's rows: per head, its q, k, v
        return w.view(3, H, hd, *w.shape[1:]).transpose(0, 1).reshape(w.shape)

    with torch.no_grad():
        tr = ref.transformer
        tr.word_embeddings.weight.copy_(ours.wte.weight)
        tr.word_embeddings_layernorm.weight.copy_(ours.emb_ln.weight)
        tr.word_embeddings_layernorm.bias.copy_(ours.emb_ln.bias)
        for b, h in zip(ours.blocks, tr.h):
            h.input_layernorm.weight.copy_(b.ln1.weight), h.input_layernorm.bias.copy_(b.ln1.bias)
            sa = h.self_attention
            sa.query_key_value.weight.copy_(fused(b.attn.qkv.weight)), sa.query_key_value.bias.copy_(fused(b.attn.qkv.bias))
            sa.dense.weight.copy_(b.attn.proj.weight), sa.dense.bias.copy_(b.attn.proj.bias)
            h.post_attention_layernorm.weight.copy_(b.ln2.weight), h.post_attention_layernorm.bias.copy_(b.ln2.bias)
            h.mlp.dense_h_to_4h.weight.copy_(b.mlp.fc.weight), h.mlp.dense_h_to_4h.bias.copy_(b.mlp.fc.bias)
            h.mlp.dense_4h_to_h.weight.copy_(b.mlp.out.weight), h.mlp.dense_4h_to_h.bias.copy_(b.mlp.out.bias)
        tr.ln_f.weight.copy_(ours.ln_f.weight), tr.ln_f.bias.copy_(ours.ln_f.bias)
        ref.lm_head.weight.copy_(ours.wte.weight)
        x = _ids()
        torch.testing.assert_close(ours(x), ref(input_ids=x).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_head", [4, 6, 8])
def test_alibi_slopes_equal_bloom(n_head):
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor
    ref = build_alibi_tensor(torch.ones(1, 5), n_head, torch.float32)  # slope x position, position 1 = slope
    torch.testing.assert_close(alibi_slopes(n_head), ref[:, 0, 1])


def test_rotary_equals_llama():
    hd = 8
    rope = LlamaRotaryEmbedding(LlamaConfig(hidden_size=hd * 2, num_attention_heads=2, max_position_embeddings=T))
    q, k = torch.randn(2, 2, T, hd), torch.randn(2, 2, T, hd)
    cos, sin = rope(q, torch.arange(T).unsqueeze(0))
    rq, rk = apply_rotary_pos_emb(q, k, cos, sin)
    c, s = rotary_tables(hd, T)
    torch.testing.assert_close(apply_rotary(q, c, s), rq, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(apply_rotary(k, c, s), rk, rtol=1e-5, atol=1e-5)


def test_swiglu_literal():
    m = VariantGPT(V, T, D, 1, H, mlp="swiglu").blocks[0].mlp
    x = torch.randn(5, D)
    want = (torch.nn.functional.silu(x @ m.gate.weight.T) * (x @ m.up.weight.T)) @ m.out.weight.T
    torch.testing.assert_close(m(x), want)
    assert 3 * m.up.weight.numel() == 3 * D * int(8 * D / 3)  # 8 d^2 weights, as the 4d GELU MLP's


def test_positions_matter_only_where_they_should():
    """Without position information, one causal attention layer's output at the last position depends
    on the set of tokens it attends to, not their order: swapping two earlier tokens leaves its logits
    unchanged with pos=none and changes them with every other choice. (With more layers the swap also
    changes what the positions in between saw.)"""
    x = _ids()
    y = x.clone()
    y[:, [2, 5]] = x[:, [5, 2]]
    for pos in ("none", "learned", "rotary", "alibi"):
        torch.manual_seed(0)
        m = VariantGPT(V, T, D, 1, H, pos=pos)
        with torch.no_grad():
            same = torch.allclose(m(x)[:, -1], m(y)[:, -1], atol=1e-5)
        assert same == (pos == "none"), pos


def test_parameter_counts_equal_gpt2s_and_swiglu_keeps_them():
    from optrepro.models import tiny_gpt
    ref = tiny_gpt(V, T, D, L, H)
    ours = VariantGPT(V, T, D, L, H)
    for kw in ({}, {"embedding": True}, {"head": True}):
        assert ours.n_params(**kw) == ref.n_params(**kw), kw
    glu = VariantGPT(V, T, D, L, H, mlp="swiglu").n_params()
    assert abs(glu - ours.n_params()) <= L * (4 * D + D + 3 * D)  # the same 8 d^2 MLP weights, no MLP biases
    assert VariantGPT(V, T, D, L, H, emb_norm=True).n_params() == ours.n_params() + 2 * D
