"""English text from CPython's own `pydoc_data` (ships with Python: offline), as a char corpus."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@functools.lru_cache(maxsize=1)
def pydoc_text() -> str:
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))


@dataclass
class CharCorpus:
    """Character-level tokens with a fixed train/validation split (last 10% validates)."""

    train: torch.Tensor
    val: torch.Tensor
    vocab: list

    @classmethod
    def from_text(cls, text: str, max_chars: int = 0, val_frac: float = 0.1) -> "CharCorpus":
        if max_chars:
            text = text[:max_chars]
        vocab = sorted(set(text))
        idx = {c: i for i, c in enumerate(vocab)}
        ids = torch.tensor([idx[c] for c in text], dtype=torch.long)
        k = int(len(ids) * (1 - val_frac))
        return cls(ids[:k], ids[k:], vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def batch(self, split: str, batch_size: int, context: int, gen: torch.Generator):
        data = self.train if split == "train" else self.val
        ix = torch.randint(0, len(data) - context - 1, (batch_size,), generator=gen)
        x = torch.stack([data[i:i + context] for i in ix.tolist()])
        y = torch.stack([data[i + 1:i + context + 1] for i in ix.tolist()])
        return x, y

    def eval_batches(self, batch_size: int, context: int, n_batches: int):
        """Fixed, non-overlapping validation windows: the same for every run."""
        data = self.val
        starts = torch.arange(0, len(data) - context - 1, context)[: batch_size * n_batches]
        for b in range(0, len(starts), batch_size):
            s = starts[b:b + batch_size].tolist()
            yield (torch.stack([data[i:i + context] for i in s]),
                   torch.stack([data[i + 1:i + context + 1] for i in s]))
