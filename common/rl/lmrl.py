"""Reinforcement learning of language models on verifiable rewards: the pieces GRPO-family papers share.

- `group_advantages`: a completion's reward minus its group's mean, divided by the group's std (GRPO),
  the batch's std, or nothing (Dr. GRPO); as trl's GRPOTrainer computes them (unbiased std, + 1e-4).
- `completion_logps`: per-token log-probabilities of the completion tokens under a causal LM.
- `policy_loss`: the clipped surrogate -min(ρ A, clip(ρ, 1 - ε_low, 1 + ε_high) A) per token, aggregated as
  grpo (mean over each completion's tokens, then over completions: the 1/|o| that biases length),
  dr_grpo (sum over tokens / (completions x max completion length): a constant), or bnpo / dapo (sum over
  tokens / tokens in the batch). Tested equal to trl's GRPOTrainer._compute_loss on the same batch.
- `sample`: completions from a causal LM (temperature sampling, stop at EOS), with the mask trl uses
  (every token up to and including the first EOS).
- `Arithmetic`: a verifiable task for tiny models: prompts "a+b=", completions of k filler tokens ('.', a
  stand-in for reasoning that does not help) and the sum's digits, then EOS; the fillers come `before` the
  digits or `after` them (then the model can condition its length on the answer it gave). Reward 1 if the
  digits are the sum. `pretrain` fits a tiny LM to correct completions with random filler counts, so the RL
  stage starts from a model that answers sometimes and varies its length.
"""
from __future__ import annotations

import torch
from torch import nn

from optrepro.errors import ConfigError

LOSS_TYPES = ("grpo", "dr_grpo", "bnpo", "dapo")
SCALES = ("group", "batch", "none")


def group_advantages(rewards: torch.Tensor, group: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """rewards [n], consecutive groups of `group` completions of one prompt -> advantages [n]."""
    if scale not in SCALES:
        raise ConfigError(f"scale '{scale}' unknown; valid: {', '.join(SCALES)}")
    r = rewards.reshape(-1, group)
    adv = (r - r.mean(1, keepdim=True)).reshape(-1)
    if scale == "group":
        adv = adv / (r.std(1, keepdim=True).expand_as(r).reshape(-1) + eps)
    elif scale == "batch":
        adv = adv / (rewards.std() + eps)
    return adv


def completion_logps(logits_fn, prompt_ids, completion_ids) -> torch.Tensor:
    """[B, T] log p(completion token t | prompt, earlier tokens); logits_fn(ids [B, L]) -> [B, L, V]."""
    ids = torch.cat([prompt_ids, completion_ids], 1)
    logits = logits_fn(ids)[:, prompt_ids.shape[1] - 1:-1]
    return torch.log_softmax(logits.float(), -1).gather(-1, completion_ids[..., None]).squeeze(-1)


def policy_loss(logp, old_logp, mask, adv, loss_type: str, max_len: int, eps_low: float = 0.2,
                eps_high: float = 0.2) -> torch.Tensor:
    if loss_type not in LOSS_TYPES:
        raise ConfigError(f"loss_type '{loss_type}' unknown; valid: {', '.join(LOSS_TYPES)}")
    ratio = torch.exp(logp - old_logp)
    a = adv[:, None]
    per_token = -torch.min(ratio * a, ratio.clamp(1 - eps_low, 1 + eps_high) * a)
    m = mask.to(per_token.dtype)
    if loss_type == "grpo":
        return ((per_token * m).sum(1) / m.sum(1).clamp(min=1.0)).mean()
    if loss_type == "dr_grpo":
        return (per_token * m).sum() / (per_token.shape[0] * max_len)
    return (per_token * m).sum() / m.sum().clamp(min=1.0)


@torch.no_grad()
def sample(logits_fn, prompt_ids, max_new: int, eos: int, pad: int, gen: torch.Generator, temperature: float = 1.0):
    """(completion_ids [B, max_new], mask [B, max_new]): tokens after the first EOS are `pad` and masked out."""
    ids = prompt_ids
    out = torch.full((len(ids), max_new), pad, dtype=torch.long)
    done = torch.zeros(len(ids), dtype=torch.bool)
    for t in range(max_new):
        logits = logits_fn(ids)[:, -1].float() / temperature
        tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(1)
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        out[:, t] = tok
        done = done | (tok == eos)
        ids = torch.cat([ids, tok[:, None]], 1)
        if done.all():
            break
    first = torch.where(out == eos, torch.arange(max_new)[None].expand_as(out), max_new).min(1).values
    return out, torch.arange(max_new)[None] <= first[:, None]


class Arithmetic:
    """Vocabulary: pad 0, eos 1, digits 2-11, '+' 12, '=' 13, '.' 14 (filler)."""
    PAD, EOS, PLUS, EQ, FILL = 0, 1, 12, 13, 14
    VOCAB = 15

    FILLS = ("before", "after")

    def __init__(self, max_operand: int = 50, max_fill: int = 6, fill: str = "before"):
        if max_operand < 2 or max_fill < 0:
            raise ConfigError(f"Arithmetic needs max_operand >= 2 and max_fill >= 0, got {max_operand}, {max_fill}")
        if fill not in self.FILLS:
            raise ConfigError(f"fill '{fill}' unknown; valid: {', '.join(self.FILLS)}")
        self.max_operand, self.max_fill, self.fill = max_operand, max_fill, fill
        self.n_digits = len(str(2 * (max_operand - 1)))
        self.prompt_len = 2 * len(str(max_operand - 1)) + 2
        self.max_new = max_fill + self.n_digits + 1 + 4  # room to ramble past the pretraining lengths

    def digits(self, n: int, width: int | None = None) -> list:
        s = str(n) if width is None else str(n).zfill(width)
        return [2 + int(c) for c in s]

    def prompts(self, n: int, gen: torch.Generator):
        """(prompt_ids [n, prompt_len], a, b): fixed-width operands, e.g. '07+42='."""
        a = torch.randint(0, self.max_operand, (n,), generator=gen)
        b = torch.randint(0, self.max_operand, (n,), generator=gen)
        w = len(str(self.max_operand - 1))
        ids = [self.digits(int(x), w) + [self.PLUS] + self.digits(int(y), w) + [self.EQ] for x, y in zip(a, b)]
        return torch.tensor(ids), a, b

    def pretraining_batch(self, n: int, gen: torch.Generator):
        """(prompt_ids [n, prompt_len], completion_ids [n, max_new], mask [n, max_new]): correct completions
        with k ~ U{0..max_fill} fillers; the mask covers the completion up to and including EOS."""
        p, a, b = self.prompts(n, gen)
        k = torch.randint(0, self.max_fill + 1, (n,), generator=gen)
        comp = torch.full((n, self.max_new), self.PAD, dtype=torch.long)
        mask = torch.zeros(n, self.max_new, dtype=torch.bool)
        for i in range(n):
            fill, ans = [self.FILL] * int(k[i]), self.digits(int(a[i] + b[i]))
            seq = (fill + ans if self.fill == "before" else ans + fill) + [self.EOS]
            comp[i, :len(seq)] = torch.tensor(seq)
            mask[i, :len(seq)] = True
        return p, comp, mask

    def rewards(self, completion_ids, mask, a, b) -> torch.Tensor:
        """1 if the completion is fillers then exactly the digits of a + b (fill: after: the digits then
        fillers), then EOS; else 0."""
        r = torch.zeros(len(a))
        for i in range(len(a)):
            toks = completion_ids[i][mask[i]].tolist()
            if not toks or toks[-1] != self.EOS:
                continue
            toks = toks[:-1] if self.fill == "before" else toks[-2::-1]  # 'after': read it backwards
            j = 0
            while j < len(toks) and toks[j] == self.FILL:
                j += 1
            ans = self.digits(int(a[i] + b[i]))
            r[i] = float(toks[j:] == (ans if self.fill == "before" else ans[::-1]))
        return r


def pretrain(model: nn.Module, task: Arithmetic, steps: int, batch: int, lr: float, gen: torch.Generator, log=None):
    """Supervised next-token training on the completions of `pretraining_batch` (AdamW)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        p, comp, mask = task.pretraining_batch(batch, gen)
        logp = completion_logps(model, p, comp)
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log is not None and (step % 100 == 0 or step == steps - 1):
            log(step, pretrain_loss=float(loss.detach()))
    return model
