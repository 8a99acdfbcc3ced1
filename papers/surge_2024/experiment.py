"""surge_2024: one row = one optimizer at one sample budget; one run sweeps batch sizes x
learning rates (each point a classify run at the same number of training samples), takes the
lr with the lowest final training loss per batch size, and summarizes the curve."""
from __future__ import annotations

import copy
import statistics
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.report.compare import seed_values
from optrepro.report.figure import figure
from optrepro.scaling import load_sweep
from optrepro.tasks import classify
from optrepro.papers.surge_2024.method import surge_stats


@dataclass
class Config(classify.ClassifyConfig):
    batches: list = field(default_factory=lambda: [8, 16, 32, 64, 128, 256, 512])
    log2_lrs: list = field(default_factory=lambda: [-12, -10, -8, -6, -4, -2])
    sample_epochs: float = 20.0
    """Training samples = sample_epochs x the training-set size, for every batch size."""


def preflight(cfg) -> None:
    if isinstance(cfg, LMConfig):
        if cfg.tokens <= 0:
            raise ConfigError(f"tokens must be positive, got {cfg.tokens}")
        return
    classify.preflight(cfg)
    if len(cfg.batches) < 3 or sorted(cfg.batches) != list(cfg.batches):
        raise ConfigError("batches: give at least 3 increasing batch sizes")
    if len(cfg.log2_lrs) < 2:
        raise ConfigError("log2_lrs: give at least 2 learning rates")


def run(cfg: Config, ctx) -> dict:
    from optrepro.data import load
    n_train = len(load(cfg.dataset, seed=cfg.seed).x_train)
    out, best = {}, []  # every (batch, lr) training is its own resumable loop of the run
    for b in cfg.batches:
        losses = []
        for e in cfg.log2_lrs:
            c = copy.deepcopy(cfg)
            c.epochs, c.train.batch_size = 0.0, b
            c.train.steps = max(1, int(cfg.sample_epochs * n_train // b))
            c.optim.lr = 2.0 ** e
            r = classify.run(c, ctx)
            loss = r["train_loss"] if math.isfinite(r["train_loss"]) else math.inf
            losses.append(loss)
        j = min(range(len(losses)), key=losses.__getitem__)
        best.append(cfg.log2_lrs[j])
        out[f"best_log2_lr_b{b}"] = float(cfg.log2_lrs[j])
        out[f"best_train_loss_b{b}"] = float(losses[j])
    out.update(surge_stats([math.log2(b) for b in cfg.batches], best))
    return out


@dataclass
class LMConfig(BaseConfig):
    sweep_table: str = "lm_sweep"
    optimizer: str = "adam"
    """Use the sweep's runs with this optim.name."""
    tokens: int = 500000
    """... and this token budget."""


def run_lm(cfg: LMConfig, ctx) -> dict:
    """The optimal lr per batch size read off the tiny-LM sweep (lowest final validation loss over
    its lr grid; a diverged run counts as infinite loss), then the same statistics as `run`."""
    ctx.no_checkpoint("a fit to the sweep's finished runs")
    df = load_sweep(ctx.out_root, "surge_2024", cfg.sweep_table, ctx.scale, min_points=1)
    sel = df[(df["optim.name"] == cfg.optimizer) & (df["tokens"] == cfg.tokens)]
    if sel.empty:
        have = sorted({(str(a), int(b)) for a, b in zip(df["optim.name"], df["tokens"])})
        raise ConfigError(f"the sweep has no runs with optimizer '{cfg.optimizer}' and tokens {cfg.tokens}; "
                          f"it has (optimizer, tokens): {have}")
    out, best, batches, at_edge = {}, [], [], 0
    for b, g in sorted(sel.groupby("train.batch_size"), key=lambda x: x[0]):
        loss = g["val_loss"].where(np.isfinite(g["val_loss"]), np.inf)
        if g["optim.lr"].nunique() < 2:
            continue
        lr = float(g["optim.lr"].iloc[int(np.argmin(loss.values))])
        lrs = sorted(g["optim.lr"].unique())
        at_edge += lr in (lrs[0], lrs[-1])
        batches.append(int(b))
        best.append(math.log2(lr))
        out[f"best_log2_lr_b{int(b)}"] = math.log2(lr)
        out[f"best_val_loss_b{int(b)}"] = float(loss.min())
    if len(batches) < 3:
        raise ConfigError(f"need at least 3 batch sizes with 2 or more learning rates each, got {len(batches)}")
    out.update(surge_stats([math.log2(b) for b in batches], best))
    out["optimum_at_lr_edge"] = float(at_edge)
    out["sweep_points"] = float(len(sel))
    ctx.log(0, **out)
    return out


def report_extra(doc: dict, png_path) -> list[str]:
    """Figure and table: optimal log2 lr against log2 batch size, one line per row (mean over seeds)."""
    if doc["table"] == "lm_sweep":
        return []
    header = None
    lines = ["## Optimal learning rate per batch size (log2, mean over seeds)", ""]
    with figure(png_path, figsize=(7.0, 4.2)) as (fig, ax):
        for row, a in doc["rows"].items():
            per = a.get("per_seed", {})
            keys = sorted((k for k in per if k.startswith("best_log2_lr_b")), key=lambda k: int(k.rsplit("b", 1)[1]))
            if not keys:
                continue
            bs = [int(k.rsplit("b", 1)[1]) for k in keys]
            ys = [statistics.fmean(seed_values(a, k).values()) for k in keys]
            ax.plot([math.log2(b) for b in bs], ys, marker="o", label=row)
            if header is None:
                header = bs
                lines += ["| row | " + " | ".join(f"B={b}" for b in bs) + " |", "|---|" + "---|" * len(bs)]
            lines.append(f"| `{row}` | " + " | ".join(f"{y:.2f}" for y in ys) + " |")
        ax.set_xlabel("log2 batch size")
        ax.set_ylabel("log2 optimal learning rate")
        ax.legend(fontsize=8)
        ax.set_title("Optimal lr vs batch size at a fixed sample budget")
    return lines + ["", f"![optimal lr vs batch]({Path(png_path).name})", ""]
