"""million_gpu_hours_2022.

Table ablations: one row = one architecture of common.models.variant_gpt (positions, embedding
norm, MLP: one choice changed from the GPT-2-like baseline), trained by the tiny-GPT language-model
task (common.tasks.charlm) with everything else equal."""
from __future__ import annotations

from dataclasses import dataclass

from optrepro.models.variant_gpt import VariantGPT, check_variant
from optrepro.tasks import charlm


@dataclass
class Config(charlm.CharLMConfig):
    pos: str = "learned"
    """learned | rotary | alibi | none"""
    emb_norm: bool = False
    """A LayerNorm after the token embedding (BLOOM's)."""
    mlp: str = "gelu"
    """gelu (4d wide) | swiglu (8d/3 wide: the same weights)"""


def preflight(cfg: Config) -> None:
    charlm.preflight(cfg)
    check_variant(cfg.d_model, cfg.n_head, cfg.pos, cfg.mlp)


def run(cfg: Config, ctx) -> dict:
    def make_model(vocab_size: int):
        return VariantGPT(vocab_size, cfg.context, cfg.d_model, cfg.n_layer, cfg.n_head, cfg.pos, cfg.emb_norm, cfg.mlp)
    return charlm.run(cfg, ctx, make_model=make_model)
