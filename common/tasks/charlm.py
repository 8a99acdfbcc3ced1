"""Character-level language modeling with a tiny GPT (transformers config) on CPython's pydoc text."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from common.config import BaseConfig
from common.data import CharCorpus, pydoc_text
from common.errors import DataMissing
from common.models import tiny_gpt
from common.optim import OptimConfig, build_optimizer, check, make_scheduler
from common.run import RunContext
from common.train import TrainConfig, train_loop


@dataclass
class CharLMConfig(BaseConfig):
    corpus: str = "pydoc"
    """pydoc (offline: CPython's pydoc_data topics). Other corpora are full-scale only."""
    max_chars: int = 0
    """Use only the first N characters (0: all, about 0.47M)."""
    context: int = 64
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    eval_batches: int = 20
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-3))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=300, batch_size=32))


CORPORA_HELP = {
    "c4": "C4 is not available offline: export the English C4 split (allenai/c4, en) as UTF-8 text to "
          "$OPTREPRO_DATA/c4/train.txt and val.txt.",
    "wiki40b": "Wiki-40B is not available offline: prepare it with tensorflow-datasets (wiki40b/en) and "
               "export it as UTF-8 text to $OPTREPRO_DATA/wiki40b/train.txt and val.txt.",
}


def preflight(cfg: CharLMConfig) -> None:
    if cfg.corpus != "pydoc":
        raise DataMissing(CORPORA_HELP.get(cfg.corpus, f"unknown corpus '{cfg.corpus}'; valid offline: pydoc"))
    check(cfg.optim)


@torch.no_grad()
def val_loss(model: nn.Module, corpus: CharCorpus, batch_size: int, context: int, n_batches: int) -> float:
    """Mean cross-entropy (nats per character) over the corpus' fixed validation batches; leaves
    the model in eval mode."""
    model.eval()
    tot, n = 0.0, 0
    for x, y in corpus.eval_batches(batch_size, context, n_batches):
        tot += float(nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum"))
        n += y.numel()
    return tot / n


def run(cfg: CharLMConfig, ctx: RunContext) -> dict:
    corpus = CharCorpus.from_text(pydoc_text(), cfg.max_chars)
    model = tiny_gpt(corpus.vocab_size, cfg.context, cfg.d_model, cfg.n_layer, cfg.n_head).to(cfg.device)
    opt = build_optimizer(model.parameters(), cfg.optim)
    sched = make_scheduler(opt, cfg.optim, cfg.train.steps)

    def step_loss(step):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # batches are a function of step
        x, y = corpus.batch("train", cfg.train.batch_size, cfg.context, g)
        return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def evaluate():
        val = val_loss(model, corpus, cfg.train.batch_size, cfg.context, cfg.eval_batches)
        return {"val_loss": val, "val_bpc": val / math.log(2)}

    return train_loop(model, opt, sched, step_loss, evaluate, cfg.train, ctx)
