"""Language modeling with a tiny GPT-2 or Llama (transformers configs) on offline text that ships
with Python (pydoc prose, the standard library's source; see common.data.text).

Training length is `train.steps`, or a token budget `tokens` (steps = tokens / (batch x context)),
which is what scaling sweeps vary. Besides the validation loss a run reports its size and compute
under the counting conventions the scaling papers argue about: `n_params` (non-embedding, Kaplan),
`n_params_head` (plus the last layer, the 'standard' count), and `flops` = 6 N D for each.
With `eval_every`, metrics.jsonl holds the validation loss along training (`tokens` per point),
which IsoFLOP analyses interpolate (common.scaling.isoflop_from_curves)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from optrepro.config import BaseConfig
from optrepro.curvature import sampled_label_loss
from optrepro.data import CharCorpus, pydoc_text
from optrepro.data.text import CORPORA, TOKENIZERS, corpus_text
from optrepro.errors import ConfigError, DataMissing
from optrepro.models import tiny_gpt
from optrepro.models.lm import ARCHS
from optrepro.optim import OptimConfig, build_optimizer, check, make_scheduler, optimizer_params
from optrepro.run import RunContext
from optrepro.train import TrainConfig, train_loop


@dataclass
class CharLMConfig(BaseConfig):
    corpus: str = "pydoc"
    """pydoc | cpython | pydoc+cpython (offline); c4, wiki40b are full-scale only."""
    tokenizer: str = "char"
    """char | byte (vocabulary 256, the same for every corpus)."""
    max_chars: int = 0
    """pydoc with char tokens only: use the first N characters (0: all, about 0.47M)."""
    arch: str = "gpt2"
    """gpt2 | llama"""
    context: int = 64
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    tokens: int = 0
    """Training tokens; 0: train.steps steps. Otherwise steps = tokens // (batch_size x context)."""
    flops: float = 0.0
    """Compute budget instead of `tokens`: tokens = flops / (6 n_params), n_params non-embedding
    (Kaplan's count; the run then also covers that budget under the 'standard' count, which is larger)."""
    warmup_frac: float = 0.0
    """Linear warmup over this fraction of the steps (overrides optim.warmup_steps when > 0)."""
    warmup_tokens: float = 0.0
    """Linear warmup over this many tokens, whatever the run length (Kaplan et al.'s fixed warmup)."""
    warmup_per_param: float = 0.0
    """Linear warmup over this many tokens per (non-embedding) parameter (Porian et al.'s N-scaled warmup)."""
    eval_log_points: int = 0
    """Also evaluate at this many log-spaced steps from 1% of training (loss-vs-compute curves)."""
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
    if cfg.corpus not in CORPORA:
        raise DataMissing(CORPORA_HELP.get(cfg.corpus, f"unknown corpus '{cfg.corpus}'; valid offline: "
                                                       f"{', '.join(CORPORA)}"))
    if cfg.tokenizer not in TOKENIZERS:
        raise ConfigError(f"tokenizer '{cfg.tokenizer}' unknown; valid: {', '.join(TOKENIZERS)}")
    if cfg.arch not in ARCHS:
        raise ConfigError(f"arch '{cfg.arch}' unknown; valid: {', '.join(ARCHS)}")
    if cfg.d_model % cfg.n_head:
        raise ConfigError(f"d_model {cfg.d_model} is not divisible by n_head {cfg.n_head}")
    if cfg.tokens < 0 or cfg.flops < 0 or not 0 <= cfg.warmup_frac < 1:
        raise ConfigError("tokens and flops must be >= 0 and warmup_frac in [0, 1)")
    if cfg.tokens and cfg.flops:
        raise ConfigError("give tokens or flops, not both")
    if sum(bool(x) for x in (cfg.warmup_frac, cfg.warmup_tokens, cfg.warmup_per_param)) > 1:
        raise ConfigError("give at most one of warmup_frac, warmup_tokens, warmup_per_param")
    if cfg.tokens and cfg.tokens < cfg.train.batch_size * cfg.context:
        raise ConfigError(f"tokens {cfg.tokens} is less than one batch ({cfg.train.batch_size} x {cfg.context})")
    check(cfg.optim)


def steps_of(cfg: CharLMConfig, n_params: int) -> int:
    per_step = cfg.train.batch_size * cfg.context
    if cfg.flops:
        return max(1, int(cfg.flops / (6 * n_params) // per_step))
    return max(1, cfg.tokens // per_step) if cfg.tokens else cfg.train.steps


def warmup_steps(cfg: CharLMConfig, steps: int, n_params: int) -> int:
    per_step = cfg.train.batch_size * cfg.context
    if cfg.warmup_frac:
        return max(1, int(cfg.warmup_frac * steps))
    if cfg.warmup_tokens:
        return max(1, int(cfg.warmup_tokens // per_step))
    if cfg.warmup_per_param:
        return max(1, int(cfg.warmup_per_param * n_params // per_step))
    return cfg.optim.warmup_steps


def log_steps(steps: int, k: int, start: float = 0.01) -> list:
    import numpy as np
    return sorted({int(s) for s in np.geomspace(max(1, start * steps), steps, k).round()}) if k else []


def load_corpus(cfg: CharLMConfig) -> CharCorpus:
    if cfg.corpus == "pydoc" and cfg.tokenizer == "char":
        return CharCorpus.from_text(pydoc_text(), cfg.max_chars)  # the original split: the last 10%
    return CharCorpus.from_parts(*corpus_text(cfg.corpus), tokenizer=cfg.tokenizer)


@torch.no_grad()
def val_loss(model: nn.Module, corpus: CharCorpus, batch_size: int, context: int, n_batches: int,
             spread: bool = False) -> float:
    """Mean cross-entropy (nats per character) over the corpus' fixed validation batches; leaves
    the model in eval mode."""
    model.eval()
    tot, n = 0.0, 0
    for x, y in corpus.eval_batches(batch_size, context, n_batches, spread):
        tot += float(nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum"))
        n += y.numel()
    return tot / n


def run(cfg: CharLMConfig, ctx: RunContext, make_optimizer=None, probe=None, make_model=None, loss=None) -> dict:
    """One row, one seed. `make_optimizer(params, tokens_per_step)` builds an optimizer outside the
    registry (second-order ones) in place of `optim.name`; the schedule still comes from `optim`.
    `make_model(vocab_size)` builds the model in place of tiny_gpt (architecture ablations; a caller
    that keeps the model, e.g. a teacher to distill from). `loss(logits, x, y)` replaces the
    cross-entropy to the next token as the training loss (distillation); the validation loss is
    always the cross-entropy.
    `probe(model, opt, one_step) -> {name: value}` runs after training and its values join the
    results (`one_step()` takes one more training step on a fresh batch: for measuring a step's
    memory; the reported metrics are computed before it)."""
    corpus = load_corpus(cfg)
    model = (make_model(corpus.vocab_size) if make_model is not None else
             tiny_gpt(corpus.vocab_size, cfg.context, cfg.d_model, cfg.n_layer, cfg.n_head, cfg.arch)).to(cfg.device)
    n = model.n_params()
    steps = steps_of(cfg, n)
    tc = dataclasses.replace(cfg.train, steps=steps, eval_at=list(cfg.train.eval_at) + log_steps(steps, cfg.eval_log_points))
    oc = dataclasses.replace(cfg.optim, warmup_steps=warmup_steps(cfg, steps, n))
    tok_per_step = tc.batch_size * cfg.context
    opt = make_optimizer(list(model.parameters()), tok_per_step) if make_optimizer else build_optimizer(optimizer_params(model, oc), oc)
    sched = make_scheduler(opt, oc, tc.steps)
    size = {"n_params": float(model.n_params()), "n_params_head": float(model.n_params(head=True)),
            "n_params_total": float(model.n_params(embedding=True))}
    spread = not (cfg.corpus == "pydoc" and cfg.tokenizer == "char")

    seen = [0]  # steps taken (batches are a function of the step, so this survives resume)

    def batch(step):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # batches are a function of step
        return corpus.batch("train", cfg.train.batch_size, cfg.context, g)

    def step_loss(step):
        seen[0] = step + 1
        x, y = batch(step)
        if loss is not None:
            return loss(model(x), x, y)
        return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def curvature_loss(step):  # for optimizers that refresh a curvature estimate (Sophia's GNB)
        return sampled_label_loss(model, batch(step)[0], torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 500_000_009))

    def evaluate():
        val = val_loss(model, corpus, tc.batch_size, cfg.context, cfg.eval_batches, spread)
        out = {"val_loss": val, "val_bpc": val / math.log(2), "perplexity": math.exp(val)}
        if cfg.tokens or cfg.flops:
            d = float((seen[0] or tc.steps) * tok_per_step)
            out.update(tokens=d, flops=6 * size["n_params"] * d, flops_head=6 * size["n_params_head"] * d)
        return out

    final = train_loop(model, opt, sched, step_loss, evaluate, tc, ctx, curvature_loss=curvature_loss)
    if probe is not None:
        def one_step():
            model.train()
            opt.zero_grad(set_to_none=True)
            step_loss(tc.steps).backward()
            opt.step()
        final = {**final, **probe(model, opt, one_step)}
    return {**final, **size} if cfg.tokens or cfg.flops else final


def run_measuring_memory(cfg: CharLMConfig, ctx: RunContext) -> dict:
    """`run` with memory measured after training (common.zo.memory.training_memory): the optimizer's
    state bytes per model parameter, counted (projection bases and any other state tensors
    included), and the peak tensor memory of one more training step from the allocator's events,
    as `repro bench memory` measures it. The memory-efficient optimizer papers' experiment."""
    from optrepro.zo.memory import training_memory
    return run(cfg, ctx, probe=training_memory)
