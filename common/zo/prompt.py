"""An offline stand-in for prompt-based fine-tuning of a pretrained LM (MeZO's setting).

- The LM: a byte-level GPT-2 (common.models.tiny_gpt, vocabulary 256) pretrained here on the pydoc
  prose and the standard library's source, *without* the task's packages; cached per (spec, seed)
  under <runs>/_cache/zo/.
- The task ("which package is this code from"): 48-byte windows of the standard library's source
  from four packages (asyncio, email, tkinter, xml), rendered as the prompt
  `<snippet>\\n# package: ` whose next byte is the label word's first letter (a, e, t, x): the
  verbalizer. Whole files are split between train and test (in path order, a file goes to test while
  test holds under a quarter of the windows), so a test snippet never comes from a file seen in training.
- The loss is MeZO's prompt-based one: cross-entropy of the LM's next-byte logits restricted to the
  verbalizer bytes; zero-shot accuracy is the same argmax with the pretrained weights.
"""
from __future__ import annotations

import re
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from optrepro.data.text import cpython_source_files, pydoc_text
from optrepro.errors import ConfigError
from optrepro import checkpoint
from optrepro.io import cached_torch

PACKAGES = ("asyncio", "email", "tkinter", "xml")
TEMPLATE = "\n# package: "


@dataclass
class LMSpec:
    pretrained: str = ""
    """A Hugging Face model the paper fine-tunes (full scale, e.g. facebook/opt-13b): not loaded here; empty:
    the byte-level GPT-2 pretrained in the repo."""
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    context: int = 64
    pretrain_steps: int = 3000
    """Adam steps of next-byte pretraining (batch `pretrain_batch` x `context`)."""
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3


KEYWORDS = ("return", "if", "self", "def")
TASKS = ("next_keyword", "package")


@dataclass
class TaskSpec:
    kind: str = "next_keyword"
    """next_keyword: which of return / if / self / def starts the next statement (the 48 bytes before it
    are the prompt; verbalizer r, i, s, d): the pretrained LM's own next-byte guess is a real zero-shot
    baseline. package: which package a 48-byte window comes from (+ a template; zero-shot is chance)."""
    packages: list = field(default_factory=lambda: list(PACKAGES))
    snippet: int = 48
    """Bytes of source per example (the prompt adds len(TEMPLATE) + 0 bytes; must fit the context)."""
    train_per_class: int = 128
    dev_per_class: int = 100
    """Held out from the training files (disjoint from the training examples): for choosing settings."""
    test_per_class: int = 250


def _package_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else ""


def pretrain_bytes(exclude) -> torch.Tensor:
    """uint8 tokens: pydoc prose + the standard library's source outside the `exclude` packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts = [pydoc_text()]
    texts += [f.read_text(encoding="utf-8", errors="replace") for f in cpython_source_files()
              if _package_of(f, root) not in set(exclude)]
    return torch.frombuffer(bytearray("\n".join(texts).encode("utf-8", "replace")), dtype=torch.uint8).clone()


def check_specs(lm: LMSpec, task: TaskSpec) -> None:
    if lm.pretrained:
        raise ConfigError(f"lm.pretrained '{lm.pretrained}' is the paper's full-scale model: this repository does not "
                          "download or load pretrained LLM weights or the SuperGLUE data; run --scale mini")
    if task.kind not in TASKS:
        raise ConfigError(f"task.kind '{task.kind}' unknown; valid: {', '.join(TASKS)}")
    unknown = [p for p in task.packages if p not in PACKAGES]
    if unknown or len(task.packages) < 2 or len({p[0] for p in task.packages}) != len(task.packages):
        raise ConfigError(f"task.packages must be >= 2 of {', '.join(PACKAGES)} with distinct first letters, "
                          f"got {task.packages}")
    if task.snippet + len(TEMPLATE) > lm.context:
        raise ConfigError(f"task.snippet ({task.snippet}) + the template ({len(TEMPLATE)} bytes) exceeds "
                          f"lm.context ({lm.context})")
    if task.train_per_class < 1 or task.test_per_class < 1:
        raise ConfigError("task.train_per_class and task.test_per_class must be >= 1")
    if lm.d_model % lm.n_head:
        raise ConfigError(f"lm.d_model ({lm.d_model}) must be divisible by lm.n_head ({lm.n_head})")


def build_lm(lm: LMSpec):
    from optrepro.models import tiny_gpt
    return tiny_gpt(256, lm.context, lm.d_model, lm.n_layer, lm.n_head)


def pretrained_lm(lm: LMSpec, exclude, seed: int, root: Path, log=None):
    """The pretrained LM for (spec, seed), trained once and cached; returns (model, info)."""
    key = "_".join(f"{k}{v}" for k, v in asdict(lm).items())
    path = Path(root) / "_cache" / "zo" / f"lm_{key}_x{'-'.join(sorted(exclude))}_s{seed}.pt"

    def build():
        torch.manual_seed(seed)
        model = build_lm(lm)
        data = pretrain_bytes(exclude)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lm.pretrain_lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) *
                                                  max(0.0, 1 - s / max(1, lm.pretrain_steps)) + 1e-3)
        last = {"loss": float("nan")}
        for s in checkpoint.cached_steps(lm.pretrain_steps, {"model": model, "opt": opt, "sched": sched, "gen": gen,
                                                             "last": last}, path):
            step = s - 1
            start = torch.randint(0, data.numel() - lm.context - 1, (lm.pretrain_batch,), generator=gen)
            win = torch.stack([data[s:s + lm.context + 1] for s in start.tolist()]).long()
            logits = model(win[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, 256), win[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            last["loss"] = float(loss.detach())
            if log is not None and (step + 1) % 500 == 0:
                log(step + 1, last["loss"])
        return {"state": model.state_dict(), "final_loss": last["loss"]}

    ck = cached_torch(path, build)
    model = build_lm(lm)
    model.load_state_dict(ck["state"])
    return model, {"pretrain_loss": ck["final_loss"]}


@dataclass
class PromptData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_dev: torch.Tensor
    y_dev: torch.Tensor
    verbalizer: torch.Tensor
    """Byte id of each class's label word (its first letter)."""


def _windows(text: bytes, size: int) -> list:
    out = []
    for s in range(0, len(text) - size, size):
        w = text[s:s + size]
        if len(w.strip()) >= size // 2 and all(b < 128 for b in w):  # skip blank stretches and non-ASCII
            out.append(w)
    return out


def _keyword_examples(text: bytes, size: int) -> list:
    """(prompt, class) for each statement starting with one of KEYWORDS, the prompt being the `size`
    bytes right before the keyword (ending with the line's indentation)."""
    out = []
    for m in re.finditer(rb"\n[ \t]*(return[ (\n]|if[ (]|self\.|def )", text):
        start = m.start(1)
        if start >= size and all(b < 128 for b in text[start - size:start]):
            word = m.group(1).rstrip(b" (.\n").decode()
            out.append((text[start - size:start], KEYWORDS.index(word)))
    return out


def _goes_to_test(n_train: int, n_test: int) -> bool:
    """Whole files go to test (in path order) while test holds under a quarter of the examples."""
    return n_test < 0.25 * (n_train + n_test)


def _balanced(pools: dict, names, task: TaskSpec, gen, suffix: bytes = b"") -> PromptData:
    """Draw train + dev from pools['train'][c] and test from pools['test'][c] for each class c."""
    xs, ys = {"train": [], "dev": [], "test": []}, {"train": [], "dev": [], "test": []}
    want = {"train": task.train_per_class + task.dev_per_class, "test": task.test_per_class}
    for c, name in enumerate(names):
        for split, n in want.items():
            pool = pools[split][c]
            if len(pool) < n:
                raise ConfigError(f"'{name}' has {len(pool)} {split} examples, fewer than the {n} asked")
            for k, j in enumerate(torch.randperm(len(pool), generator=gen)[:n].tolist()):
                dest = "dev" if split == "train" and k >= task.train_per_class else split
                xs[dest].append(list(pool[j] + suffix))
                ys[dest].append(c)
    t = lambda v: torch.tensor(v)
    verb = torch.tensor([ord(w[0]) for w in names])
    return PromptData(t(xs["train"]), t(ys["train"]), t(xs["test"]), t(ys["test"]), t(xs["dev"]), t(ys["dev"]), verb)


def prompt_data(task: TaskSpec, seed: int) -> PromptData:
    """Balanced train / dev / test prompts; which examples are drawn depends on `seed`, the file split
    does not. next_keyword splits the task packages' files together, package splits each package's."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = {p: [] for p in task.packages}
    for f in cpython_source_files():
        p = _package_of(f, root)
        if p in files:
            files[p].append(f)
    gen = torch.Generator().manual_seed(seed)
    if task.kind == "next_keyword":
        pools = {"train": [[] for _ in KEYWORDS], "test": [[] for _ in KEYWORDS]}
        count = {"train": 0, "test": 0}
        for p in task.packages:
            for f in sorted(files[p]):
                ex = _keyword_examples(f.read_bytes(), task.snippet)
                split = "test" if _goes_to_test(count["train"], count["test"]) else "train"
                count[split] += len(ex)
                for prompt, c in ex:
                    pools[split][c].append(prompt)
        return _balanced(pools, KEYWORDS, task, gen)
    pools = {"train": [[] for _ in task.packages], "test": [[] for _ in task.packages]}
    for c, p in enumerate(task.packages):
        for f in sorted(files[p]):
            w = _windows(f.read_bytes(), task.snippet)
            split = "test" if _goes_to_test(len(pools["train"][c]), len(pools["test"][c])) else "train"
            pools[split][c] += w
    return _balanced(pools, task.packages, task, gen, TEMPLATE.encode())


def label_logits(model, ids: torch.Tensor, verbalizer: torch.Tensor) -> torch.Tensor:
    """Next-byte logits at the prompt's end, restricted to the verbalizer bytes: (batch, classes)."""
    return model(ids)[:, -1, :][:, verbalizer]


def prompt_loss(model, ids, y, verbalizer) -> torch.Tensor:
    return F.cross_entropy(label_logits(model, ids, verbalizer), y)


@torch.no_grad()
def accuracy(model, ids, y, verbalizer, batch: int = 500) -> float:
    correct = 0
    for s in range(0, len(y), batch):
        correct += int((label_logits(model, ids[s:s + batch], verbalizer).argmax(1) == y[s:s + batch]).sum())
    return correct / len(y)


@torch.no_grad()
def last_hidden(model, ids, batch: int = 500) -> torch.Tensor:
    """The final hidden state at the prompt's last position (the linear probe's features)."""
    out = []
    for s in range(0, len(ids), batch):
        h = model.gpt.transformer(input_ids=ids[s:s + batch]).last_hidden_state
        out.append(h[:, -1, :])
    return torch.cat(out)
