"""Offline text corpora that ship with Python itself, as token tensors.

- `pydoc`: CPython's `pydoc_data` topics (English reference prose, about 0.47M characters).
- `cpython`: the standard library's own `.py` source (about 12 MB on 3.11; tests, idlelib,
  site-packages excluded), split by file: every 10th file (sorted by path) validates.
- `pydoc+cpython`: both, each split as above.

Tokenizers: `char` (vocabulary = the characters seen) or `byte` (UTF-8 bytes, vocabulary 256:
the same for every corpus, what the scaling sweeps use). The corpus text depends on the Python
version's standard library; runs record the Python version in their meta."""
from __future__ import annotations

import functools
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from optrepro.errors import ConfigError

CORPORA = ("pydoc", "cpython", "pydoc+cpython")
TOKENIZERS = ("char", "byte")
_EXCLUDE = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo"}


@functools.lru_cache(maxsize=1)
def pydoc_text() -> str:
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def cpython_source_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(f for f in root.rglob("*.py") if not (_EXCLUDE & set(f.relative_to(root).parts)))


@functools.lru_cache(maxsize=1)
def cpython_text() -> tuple[str, str]:
    """(train, validation) text: every 10th standard-library file validates."""
    parts = ([], [])
    for i, f in enumerate(cpython_source_files()):
        parts[i % 10 == 9].append(f.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts[0]), "\n".join(parts[1])


def corpus_text(name: str, val_frac: float = 0.1) -> tuple[str, str]:
    """(train, validation) text of an offline corpus (see the module docstring)."""
    if name not in CORPORA:
        raise ConfigError(f"corpus '{name}' unknown; valid offline: {', '.join(CORPORA)}")
    tr, va = [], []
    if "pydoc" in name:
        t = pydoc_text()
        k = int(len(t) * (1 - val_frac))
        tr.append(t[:k])
        va.append(t[k:])
    if "cpython" in name:
        t, v = cpython_text()
        tr.append(t)
        va.append(v)
    return "\n".join(tr), "\n".join(va)


@dataclass
class CharCorpus:
    """Token ids with a fixed train/validation split."""

    train: torch.Tensor
    val: torch.Tensor
    vocab: list

    @classmethod
    def from_text(cls, text: str, max_chars: int = 0, val_frac: float = 0.1) -> "CharCorpus":
        """Character tokens of one text; the last `val_frac` validates."""
        if max_chars:
            text = text[:max_chars]
        k = int(len(text) * (1 - val_frac))
        return cls.from_parts(text[:k], text[k:], "char", vocab_text=text)

    @classmethod
    def from_parts(cls, train_text: str, val_text: str, tokenizer: str = "char",
                   vocab_text: str | None = None) -> "CharCorpus":
        if tokenizer == "byte":
            enc = lambda s: torch.frombuffer(bytearray(s.encode("utf-8")), dtype=torch.uint8)  # noqa: E731
            return cls(enc(train_text), enc(val_text), list(range(256)))
        if tokenizer != "char":
            raise ConfigError(f"tokenizer '{tokenizer}' unknown; valid: {', '.join(TOKENIZERS)}")
        vocab = sorted(set(vocab_text if vocab_text is not None else train_text + val_text))
        idx = {c: i for i, c in enumerate(vocab)}
        enc = lambda s: torch.tensor([idx[c] for c in s], dtype=torch.long)  # noqa: E731
        return cls(enc(train_text), enc(val_text), vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @staticmethod
    def _windows(data, starts, context):
        x = torch.stack([data[i:i + context] for i in starts]).long()
        y = torch.stack([data[i + 1:i + context + 1] for i in starts]).long()
        return x, y

    def batch(self, split: str, batch_size: int, context: int, gen: torch.Generator, part: tuple[int, int] | None = None):
        """Random windows of the split; with `part=(i, n)` only from its i-th of n contiguous parts (a
        worker's own shard of the text: non-i.i.d. data, since the text runs module by module)."""
        data = self.train if split == "train" else self.val
        if part is not None:
            i, n = part
            lo, hi = len(data) * i // n, len(data) * (i + 1) // n
            if hi - lo <= context + 1:
                raise ValueError(f"part {i} of {n} has {hi - lo} tokens, fewer than a window of {context + 1}")
            data = data[lo:hi]
        ix = torch.randint(0, len(data) - context - 1, (batch_size,), generator=gen)
        return self._windows(data, ix.tolist(), context)

    def eval_batches(self, batch_size: int, context: int, n_batches: int, spread: bool = False):
        """Fixed, non-overlapping validation windows, the same for every run: from the start of the
        validation text, or (`spread`) evenly over all of it."""
        data = self.val
        n = min(batch_size * n_batches, (len(data) - 1) // context)
        stride = max(context, (len(data) - context - 1) // max(1, n)) if spread else context
        starts = torch.arange(0, len(data) - context - 1, stride)[:n]
        for b in range(0, len(starts), batch_size):
            yield self._windows(data, starts[b:b + batch_size].tolist(), context)
