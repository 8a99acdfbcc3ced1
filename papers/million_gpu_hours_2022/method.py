"""The ablated architectures are common.models.variant_gpt.VariantGPT (tested against GPT-2 and BLOOM
from transformers in tests/reference/test_variant_gpt.py): this paper adds no optimizer or loss; it
measures architectural choices at a fixed training recipe."""
from optrepro.models.variant_gpt import VariantGPT, alibi_slopes, apply_rotary

__all__ = ["VariantGPT", "alibi_slopes", "apply_rotary"]
