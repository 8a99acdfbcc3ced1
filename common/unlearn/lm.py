"""The benchmark's language models: a word-level tokenizer, a tiny GPT-2 pretrained on general text
(pydoc prose + the general-knowledge facts), the "target" model fine-tuned on every fictitious fact
and the "retain" reference fine-tuned on the retain split only. Each is cached per (spec, seed)
under <runs>/_cache/unlearn/.

A QA pair is the token sequence  <bos> question Answer : answer <eos>; the loss (and every
probability the metrics use) covers the answer tokens and <eos>."""
from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from optrepro.data.text import pydoc_text
from optrepro.errors import ConfigError
from optrepro import checkpoint
from optrepro.io import cached_torch
from optrepro.unlearn import facts as F_

PAD, UNK, BOS, EOS = 0, 1, 2, 3
_TOKEN = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")
ANSWER = "Answer :"


class WordTokenizer:
    """Words, single digits and punctuation; the vocabulary is every word the fact generator can
    emit plus the `n_general` most frequent pydoc tokens (others map to <unk>). It does not depend
    on the seed."""

    def __init__(self, n_general: int = 2000):
        words = Counter(_TOKEN.findall(pydoc_text()))
        fixed = set()
        P = F_.pools()
        texts = [ANSWER] + [t for tpl in list(F_.ATTRS.values()) + list(F_.GENERAL.values()) for t in tpl]
        texts += [v for k, pool in P.items() for v in pool] + [x for pair in F_.CAPITALS + F_.SYMBOLS for x in pair]
        texts += F_.JOBS + F_.GENRES + F_.LANGUAGES + ["The , and"]
        for t in texts:
            fixed.update(_TOKEN.findall(t.replace("{n}", "").replace("{v}", "")))
        common = [w for w, _ in words.most_common() if w not in fixed][:n_general]
        self.itos = ["<pad>", "<unk>", "<bos>", "<eos>"] + sorted(fixed) + common
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, text: str) -> list:
        return [self.stoi.get(w, UNK) for w in _TOKEN.findall(text)]

    def decode(self, ids) -> str:
        out = ""
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            w = self.itos[i]
            glue = (not out or re.fullmatch(r"[.,?!;:)']", w) or (w.isdigit() and out[-1:].isdigit()))
            out += w if glue else " " + w
        return out


@functools.lru_cache(maxsize=2)
def tokenizer(n_general: int = 2000) -> WordTokenizer:
    return WordTokenizer(n_general)


@dataclass
class LMSpec:
    pretrained: str = ""
    """A Hugging Face checkpoint the paper unlearns from (full scale, e.g. the TOFU fine-tuned
    Llama-2-7b-chat): not loaded here; empty: the tiny GPT-2 trained in the repo."""
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    context: int = 64
    vocab_general: int = 2000
    pretrain_steps: int = 1000
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3
    finetune_epochs: int = 30
    """Passes over the fine-tuning QA set (TOFU: 5 epochs of a 7B model; a tiny model needs more to memorize)."""
    finetune_batch: int = 32
    finetune_lr: float = 2e-3
    replay: bool = True
    """Fine-tuning replays the pretraining mixture (a quarter batch of pydoc windows and one of general
    facts) so the tiny model keeps its general knowledge (without it the general facts' ROUGE falls from
    1.0 to 0.04: a 7B model fine-tuned on TOFU does not forget the world like that)."""


def check_lm(lm: LMSpec) -> None:
    if lm.pretrained:
        raise ConfigError(f"lm.pretrained '{lm.pretrained}' is the paper's full-scale model: this repository does not "
                          "download LLM weights or the TOFU data (locuslab/TOFU); put both under $OPTREPRO_DATA and "
                          "use an implementation that loads them, or run --scale mini")
    if lm.d_model % lm.n_head:
        raise ConfigError(f"lm.d_model ({lm.d_model}) must be divisible by lm.n_head ({lm.n_head})")
    for k in ("pretrain_steps", "finetune_epochs", "pretrain_batch", "finetune_batch"):
        if getattr(lm, k) < 0:
            raise ConfigError(f"lm.{k} must be >= 0")


def build_lm(lm: LMSpec):
    from optrepro.models import tiny_gpt
    return tiny_gpt(len(tokenizer(lm.vocab_general)), lm.context, lm.d_model, lm.n_layer, lm.n_head)


@dataclass
class Batch:
    ids: torch.Tensor
    """(n, T) <bos> prompt answer <eos>, right-padded."""
    mask: torch.Tensor
    """(n, T) 1.0 where the *next* token is an answer token (so logits[:, t] predicts ids[:, t+1])."""


def encode_pairs(tok: WordTokenizer, prompts, answers, context: int) -> Batch:
    """Sequences <bos> prompt Answer : answer <eos>; the mask marks the answer tokens and <eos>."""
    rows, masks = [], []
    for q, a in zip(prompts, answers):
        p = [BOS] + tok.encode(q) + tok.encode(ANSWER)
        s = p + tok.encode(a) + [EOS]
        if len(s) > context:
            raise ConfigError(f"a QA pair is {len(s)} tokens, longer than lm.context ({context}): '{q} {a}'")
        rows.append(s)
        masks.append([0.0] * (len(p) - 1) + [1.0] * (len(s) - len(p)))
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), PAD, dtype=torch.long)
    mask = torch.zeros(len(rows), T - 1)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(m)] = torch.tensor(m)
    return Batch(ids, mask)


def seq_logprob(model, batch: Batch) -> tuple:
    """(sum of answer-token log-probabilities, number of answer tokens) per sequence."""
    logits = model(batch.ids[:, :-1])
    lp = -F.cross_entropy(logits.transpose(1, 2), batch.ids[:, 1:], reduction="none")
    return (lp * batch.mask).sum(1), batch.mask.sum(1)


def nll_loss(model, batch: Batch) -> torch.Tensor:
    """Token-mean cross-entropy over the batch's answer tokens (the fine-tuning loss)."""
    s, n = seq_logprob(model, batch)
    return -s.sum() / n.sum()


def qa_batch(tok, qa: list, context: int) -> Batch:
    return encode_pairs(tok, [x.question for x in qa], [x.answer for x in qa], context)


def _pydoc_ids(tok) -> torch.Tensor:
    return torch.tensor(tok.encode(pydoc_text()), dtype=torch.long)


def _train_qa(model, batch: Batch, epochs: int, bs: int, lr: float, seed: int, extra=None, log=None,
              cache_path=None) -> float:
    """AdamW with linear warm-up and decay over `epochs` passes of `batch`; `extra(step)` adds a loss."""
    n = batch.ids.shape[0]
    steps = max(1, epochs * max(1, n // bs))
    return train_steps(model, lambda s, idx: nll_loss(model, Batch(batch.ids[idx], batch.mask[idx])) +
                       (extra(s) if extra else 0.0), n, steps, bs, lr, seed, log, cache_path=cache_path,
                       state={"extra_gen": extra.gen} if getattr(extra, "gen", None) is not None else None)


def train_steps(model, loss_at, n: int, steps: int, bs: int, lr: float, seed: int, log=None,
                weight_decay: float = 0.01, cache_path=None, state=None) -> float:
    """`steps` AdamW steps on loss_at(step, batch indices) with epoch-wise shuffling of n examples.
    With `cache_path` (a cached build), a killed training resumes from its partial checkpoint; `state`
    names what else the steps depend on (the generator of a replay loss)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.02, 1 - s / steps))
    lp = {"perm": torch.randperm(n, generator=gen), "pos": 0, "loss": float("nan")}
    bs = min(bs, n)
    st = {"model": model, "opt": opt, "sched": sched, "gen": gen, "loop": lp, **(state or {})}
    for s1 in checkpoint.cached_steps(steps, st, cache_path) if cache_path is not None else range(1, steps + 1):
        s = s1 - 1
        if lp["pos"] + bs > n:
            lp["perm"], lp["pos"] = torch.randperm(n, generator=gen), 0
        idx = lp["perm"][lp["pos"]:lp["pos"] + bs]
        lp["pos"] += bs
        loss = loss_at(s, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        lp["loss"] = float(loss.detach())
        if log is not None and (s + 1) % 200 == 0:
            log(s + 1, lp["loss"])
    return lp["loss"]


def _key(*specs: dict) -> str:
    """A short stable name for a cache entry: the hash of every setting that shapes the model."""
    import hashlib
    import json
    d = {k: v for spec in specs for k, v in spec.items()}
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _load(lm: LMSpec, ck: dict):
    model = build_lm(lm)
    model.load_state_dict(ck["state"])
    return model


def general_loss(model, lm: LMSpec, seed: int, n_text: int, n_facts: int):
    """step -> the general-text loss on a fresh batch: next-token prediction on `n_text` pydoc windows
    plus the QA loss on `n_facts` general facts (what pretraining optimizes and fine-tuning replays)."""
    tok = tokenizer(lm.vocab_general)
    stream = _pydoc_ids(tok)
    gen = qa_batch(tok, F_.general_facts(), lm.context)
    g = torch.Generator().manual_seed(seed)
    T = lm.context

    def loss(step):
        start = torch.randint(0, stream.numel() - T - 1, (n_text,), generator=g)
        win = torch.stack([stream[i:i + T + 1] for i in start.tolist()])
        idx = torch.randint(0, gen.ids.shape[0], (n_facts,), generator=g)
        text = F.cross_entropy(model(win[:, :-1]).reshape(-1, len(tok)), win[:, 1:].reshape(-1))
        return text + nll_loss(model, Batch(gen.ids[idx], gen.mask[idx]))
    loss.gen = g  # its draws are state: a resumed training restores it
    return loss


def pretrained(lm: LMSpec, seed: int, root: Path, log=None):
    """The general-text LM: next-token prediction on pydoc windows (3/4 of each batch) plus the
    general facts as QA pairs (1/4), so they are known before any fictitious fact is seen."""
    pre = {k: v for k, v in asdict(lm).items() if k.startswith(("d_", "n_", "context", "vocab", "pretrain"))}
    path = Path(root) / "_cache" / "unlearn" / f"pre_{_key(pre)}_s{seed}.pt"

    def build():
        torch.manual_seed(seed)
        model = build_lm(lm)
        n_text = max(1, lm.pretrain_batch * 3 // 4)
        step_loss = general_loss(model, lm, seed, n_text, max(1, lm.pretrain_batch - n_text))
        loss = (train_steps(model, lambda s, idx: step_loss(s), 1, lm.pretrain_steps, 1, lm.pretrain_lr, seed, log,
                            cache_path=path, state={"text_gen": step_loss.gen})
                if lm.pretrain_steps else float("nan"))
        return {"state": model.state_dict(), "final_loss": loss}

    ck = cached_torch(path, build)
    return _load(lm, ck), {"pretrain_loss": ck["final_loss"]}


def finetuned(lm: LMSpec, fs: F_.FactSpec, seed: int, root: Path, retain_frac: float = 0.0, log=None):
    """The target model (retain_frac=0: fine-tuned on every fictitious fact) or the retain reference
    (fine-tuned on the retain split of forget fraction `retain_frac`), from the pretrained LM."""
    what = "target" if retain_frac == 0 else f"retain{retain_frac:g}"
    path = Path(root) / "_cache" / "unlearn" / f"{what}_{_key(asdict(lm), asdict(fs))}_s{seed}.pt"

    def build():
        tok = tokenizer(lm.vocab_general)
        model, _ = pretrained(lm, seed, root, log)
        _, qa = F_.make_facts(fs, seed)
        if retain_frac:
            qa = [qa[i] for i in F_.forget_split(qa, fs.n_authors, retain_frac).retain]
        replay = general_loss(model, lm, seed + 11, max(1, lm.finetune_batch // 4), max(1, lm.finetune_batch // 4))
        loss = _train_qa(model, qa_batch(tok, qa, lm.context), lm.finetune_epochs, lm.finetune_batch,
                         lm.finetune_lr, seed + 7, extra=replay if lm.replay else None, log=log, cache_path=path)
        return {"state": model.state_dict(), "final_loss": loss}

    ck = cached_torch(path, build)
    return _load(lm, ck), {f"{what}_ft_loss": ck["final_loss"]}


def retain_model(lm: LMSpec, fs: F_.FactSpec, seed: int, root: Path, frac: float, log=None):
    F_.check_frac(frac)
    return finetuned(lm, fs, seed, root, retain_frac=frac, log=log)
