"""One row (a parametrization), one seed: an Adam learning-rate sweep at width w and at width
`width_mult` x w, and where the best rate lands at each width.

The model is method.TinyDecoder (pre-norm, no positional embedding, SwiGLU, head size fixed so
the head count grows with width) trained on character-level pydoc text from the same seed's init
and batches at every grid point; the rate warms up linearly for `warmup` steps and decays linearly
to 0. A grid point is scored by its validation loss (nats per character; a run that diverges
scores NaN and is never the best).

Metrics: `log2_lr_opt_w`, `log2_lr_opt_wide` the best log2 rate at each width, refined by a
parabola through the grid minimum and its two neighbours (the grid point itself when it sits at
the grid's edge: `edge_hits` counts those, and a row with edge hits says its grid is too narrow);
`shift` = opt(wide) - opt(w), in log2 units (one unit = a factor of 2 in the rate);
`abs_shift`; `transfer_gap` the wide model's loss at the rate that was best at width w minus its
best loss on the grid (what using the small model's rate costs; a diverged run there counts as
the uniform predictor's loss, log vocab); `best_loss_w`, `best_loss_wide`.
metrics.jsonl holds every grid point (x: `log2_lr`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from optrepro.config import BaseConfig
from optrepro.data import CharCorpus, pydoc_text
from optrepro.errors import ConfigError

from . import method


@dataclass
class UMuPConfig(BaseConfig):
    parametrization: str = "umup"
    """umup | sp"""
    width: int = 16
    width_mult: int = 4
    n_layer: int = 2
    head_dim: int = 8
    context: int = 64
    batch_size: int = 32
    steps: int = 200
    warmup: int = 20
    log2_lrs: list = field(default_factory=lambda: [-3, -2, -1, 0, 1, 2, 3])
    """The sweep, as integer log2 learning rates (the same grid at both widths)."""
    max_chars: int = 0
    eval_batches: int = 8


def preflight(cfg: UMuPConfig) -> None:
    if cfg.parametrization not in method.PARAMETRIZATIONS:
        raise ConfigError(f"parametrization must be one of {', '.join(method.PARAMETRIZATIONS)}, "
                          f"got {cfg.parametrization!r}")
    if cfg.width < 1 or cfg.width_mult < 2 or cfg.n_layer < 1:
        raise ConfigError(f"width >= 1, width_mult >= 2 and n_layer >= 1 needed, got {cfg.width}, "
                          f"{cfg.width_mult}, {cfg.n_layer}")
    if cfg.head_dim < 1 or cfg.width % cfg.head_dim:
        raise ConfigError(f"width {cfg.width} must be a multiple of head_dim {cfg.head_dim}")
    lrs = list(cfg.log2_lrs)
    if len(lrs) < 3 or any(not isinstance(x, int) or isinstance(x, bool) for x in lrs) or lrs != sorted(set(lrs)):
        raise ConfigError(f"log2_lrs must be at least 3 increasing distinct integers, got {lrs}")
    if cfg.steps < 1 or not 0 <= cfg.warmup < cfg.steps or cfg.context < 2 or cfg.batch_size < 1:
        raise ConfigError(f"steps >= 1, 0 <= warmup < steps, context >= 2 and batch_size >= 1 needed, got "
                          f"steps={cfg.steps} warmup={cfg.warmup} context={cfg.context} batch={cfg.batch_size}")


def lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (steps - step) / (steps - warmup))


def train_one(cfg: UMuPConfig, corpus: CharCorpus, width: int, log2_lr: int) -> float:
    torch.manual_seed(cfg.seed)
    model = method.TinyDecoder(corpus.vocab_size, width, cfg.n_layer, width // cfg.head_dim, cfg.parametrization)
    opt = torch.optim.Adam(model.lr_groups(2.0 ** log2_lr))
    base = [g["lr"] for g in opt.param_groups]
    for step in range(cfg.steps):
        f = lr_factor(step, cfg.steps, cfg.warmup)
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * f
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # same batches at every point
        x, y = corpus.batch("train", cfg.batch_size, cfg.context, gen)
        loss = model.loss(x, y)
        if not torch.isfinite(loss):
            return float("nan")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        tot, n = 0.0, 0
        for x, y in corpus.eval_batches(cfg.batch_size, cfg.context, cfg.eval_batches):
            tot += float(torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum"))
            n += y.numel()
    v = tot / n
    return v if math.isfinite(v) else float("nan")


def optimum(log2_lrs: list, losses: list) -> tuple[float, bool]:
    """(refined best log2 rate, whether the grid minimum is at the grid's edge). The parabola's
    vertex through the minimum and its neighbours stays within half a grid step of the minimum."""
    ok = [i for i, v in enumerate(losses) if v == v]
    if not ok:
        return float("nan"), True
    i = min(ok, key=lambda j: losses[j])
    if i == 0 or i == len(losses) - 1 or losses[i - 1] != losses[i - 1] or losses[i + 1] != losses[i + 1]:
        return float(log2_lrs[i]), True
    a, b, c = losses[i - 1], losses[i], losses[i + 1]
    h = log2_lrs[i + 1] - log2_lrs[i]
    curv = a - 2 * b + c
    off = 0.5 * (a - c) / curv * h if curv > 0 else 0.0
    return float(log2_lrs[i] + max(-0.5 * h, min(0.5 * h, off))), False


def run(cfg: UMuPConfig, ctx) -> dict:
    ctx.no_checkpoint("a sweep of 2 x len(log2_lrs) short runs, each a few seconds")
    corpus = CharCorpus.from_text(pydoc_text(), cfg.max_chars)
    wide = cfg.width * cfg.width_mult
    lrs = list(cfg.log2_lrs)
    curves = {}
    for width in (cfg.width, wide):
        curves[width] = [train_one(cfg, corpus, width, k) for k in lrs]
    for k, a, b in zip(lrs, curves[cfg.width], curves[wide]):
        ctx.log(k, log2_lr=k, val_loss_w=a, val_loss_wide=b)
    opt_w, edge_w = optimum(lrs, curves[cfg.width])
    opt_wide, edge_wide = optimum(lrs, curves[wide])
    finite_wide = [v for v in curves[wide] if v == v]
    best_wide = min(finite_wide) if finite_wide else float("nan")
    finite_w = [v for v in curves[cfg.width] if v == v]
    i_w = min(range(len(lrs)), key=lambda j: curves[cfg.width][j] if curves[cfg.width][j] == curves[cfg.width][j] else math.inf)
    at_w = curves[wide][i_w]
    if at_w != at_w:  # the small model's best rate diverges on the wide one: score it as a uniform guess
        at_w = math.log(corpus.vocab_size)
    return {"log2_lr_opt_w": opt_w, "log2_lr_opt_wide": opt_wide, "shift": opt_wide - opt_w,
            "abs_shift": abs(opt_wide - opt_w), "edge_hits": float(edge_w + edge_wide),
            "transfer_gap": at_w - best_wide,
            "best_loss_w": min(finite_w) if finite_w else float("nan"), "best_loss_wide": best_wide}
