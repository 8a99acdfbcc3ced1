"""dr_grpo_2025: one row = one RL objective on the arithmetic task, one seed.

A tiny GPT (common.models.variant_gpt, 2 layers, d 64) is pretrained here on correct completions with a
random number of filler tokens (cached per seed), then trained by RL on verifiable rewards: each step draws
`prompts` questions, samples `group` completions of each at temperature 1, scores them 0/1, computes
group advantages and takes one AdamW step on the clipped surrogate (one update per batch: on-policy, as
trl's default num_iterations = 1). Every `eval_every` steps and at the end, `eval_prompts` fresh questions
(a fixed evaluation seed) are answered once each: accuracy and the mean length (tokens, EOS included) of
correct and of incorrect completions. `steps: 0` is the pretrained model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from optrepro.config import BaseConfig, require_at_least
from optrepro.errors import ConfigError
from optrepro.io import cached_torch
from optrepro.models.variant_gpt import VariantGPT
from optrepro.rl.lmrl import LOSS_TYPES, SCALES, Arithmetic, completion_logps, group_advantages, policy_loss, pretrain, sample

FULL_SCALE = "Qwen2.5-Math-7B on MATH (the paper's R1-Zero recipe): not available offline"


@dataclass
class Config(BaseConfig):
    data: str = "arithmetic"
    max_operand: int = 50
    max_fill: int = 6
    fill: str = "before"
    """Where the filler tokens go: before the answer (the model cannot know yet whether it will be right) or
    after it (its length can depend on the answer it gave)."""
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    pretrain_steps: int = 1000
    pretrain_batch: int = 128
    pretrain_lr: float = 3e-3
    loss_type: str = "grpo"
    scale: str = "group"
    """Advantage scaling: group (GRPO's std) | batch | none (Dr. GRPO)."""
    steps: int = 150
    prompts: int = 16
    group: int = 8
    lr: float = 3e-4
    clip: float = 0.2
    temperature: float = 1.0
    eval_every: int = 25
    eval_prompts: int = 512


def preflight(cfg: Config) -> None:
    if cfg.data != "arithmetic":
        raise ConfigError(f"data '{cfg.data}': only 'arithmetic' runs here ({FULL_SCALE})")
    Arithmetic(cfg.max_operand, cfg.max_fill, cfg.fill)
    if cfg.loss_type not in LOSS_TYPES:
        raise ConfigError(f"loss_type '{cfg.loss_type}' unknown; valid: {', '.join(LOSS_TYPES)}")
    if cfg.scale not in SCALES:
        raise ConfigError(f"scale '{cfg.scale}' unknown; valid: {', '.join(SCALES)}")
    require_at_least(cfg, ("prompts", "eval_every", "pretrain_steps", "pretrain_batch", "d_model", "n_layer"))
    require_at_least(cfg, ("group", "eval_prompts"), 2)
    require_at_least(cfg, ("steps",), 0)
    if cfg.d_model % cfg.n_head:
        raise ConfigError(f"d_model {cfg.d_model} must be a multiple of n_head {cfg.n_head}")
    if not (cfg.lr > 0 and cfg.pretrain_lr > 0 and cfg.temperature > 0 and 0 < cfg.clip < 1):
        raise ConfigError("lr, pretrain_lr, temperature must be > 0 and clip in (0, 1)")


def build(cfg: Config, task: Arithmetic) -> VariantGPT:
    return VariantGPT(task.VOCAB, task.prompt_len + task.max_new, cfg.d_model, cfg.n_layer, cfg.n_head)


def pretrained(cfg: Config, task: Arithmetic, root: Path, log=None) -> VariantGPT:
    key = (f"a{cfg.max_operand}_f{cfg.max_fill}{'' if cfg.fill == 'before' else '_after'}_d{cfg.d_model}_l{cfg.n_layer}_h{cfg.n_head}_s{cfg.pretrain_steps}"
           f"_b{cfg.pretrain_batch}_lr{cfg.pretrain_lr:g}_seed{cfg.seed}")

    def fit():
        torch.manual_seed(cfg.seed)
        m = build(cfg, task)
        pretrain(m, task, cfg.pretrain_steps, cfg.pretrain_batch, cfg.pretrain_lr,
                 torch.Generator().manual_seed(100 + cfg.seed), log=log)
        return {"state": m.state_dict()}
    blob = cached_torch(Path(root) / "_cache" / "dr_grpo" / f"{key}.pt", fit)
    m = build(cfg, task)
    m.load_state_dict(blob["state"])
    return m


def evaluate(model, task: Arithmetic, n: int, seed: int, temperature: float) -> dict:
    g = torch.Generator().manual_seed(seed)
    p, a, b = task.prompts(n, g)
    c, mask = sample(model, p, task.max_new, task.EOS, task.PAD, g, temperature)
    r = task.rewards(c, mask, a, b)
    length = mask.sum(1).double()
    right, wrong = r == 1, r == 0
    nan = float("nan")
    return {"accuracy": float(r.mean()), "len_right": float(length[right].mean()) if right.any() else nan,
            "len_wrong": float(length[wrong].mean()) if wrong.any() else nan, "len_all": float(length.mean())}


def run(cfg: Config, ctx) -> dict:
    ctx.no_checkpoint("a run takes about a minute; the pretrained model is cached")
    task = Arithmetic(cfg.max_operand, cfg.max_fill, cfg.fill)
    root = getattr(ctx, "out_root", None) or Path("runs")
    model = pretrained(cfg, task, root)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1000 + cfg.seed)
    eval_seed = 50_000 + cfg.seed
    start = end = evaluate(model, task, cfg.eval_prompts, eval_seed, cfg.temperature)
    ctx.log(0, **start)
    for step in range(1, cfg.steps + 1):
        p, a, b = task.prompts(cfg.prompts, gen)
        p, a, b = (t.repeat_interleave(cfg.group, 0) for t in (p, a, b))
        model.eval()
        c, mask = sample(model, p, task.max_new, task.EOS, task.PAD, gen, cfg.temperature)
        model.train()
        r = task.rewards(c, mask, a, b)
        adv = group_advantages(r, cfg.group, cfg.scale)
        logp = completion_logps(model, p, c)
        loss = policy_loss(logp, logp.detach(), mask, adv, cfg.loss_type, task.max_new, cfg.clip, cfg.clip)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            end = evaluate(model, task, cfg.eval_prompts, eval_seed, cfg.temperature)  # the last one is the result
            ctx.log(step, train_reward=float(r.mean()), train_len=float(mask.sum(1).double().mean()), **end)
    return {**end, "len_gap": end["len_wrong"] - end["len_right"],
            "len_wrong_change": end["len_wrong"] - start["len_wrong"], "accuracy_change": end["accuracy"] - start["accuracy"]}
