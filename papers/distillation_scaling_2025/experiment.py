"""distillation_scaling_2025.

Table sweep: one row = one teacher size. A run trains its teacher on the data (the tiny-GPT task,
common.tasks.charlm), then, for every student width and every student budget, two students from the
same initialisation on the same batches: one on the data (supervised, the cross-entropy to the next
character) and one by pure distillation from the teacher (common.distill.kd_loss at temperature 1).
Both are evaluated by the cross-entropy on the data. The supervised students do not depend on the
teacher, so every row holds the same ones (recomputed, bit-identical for one seed): each row's
distillation gain is a within-run, same-seed difference.
Table law: the distillation scaling law fitted to the sweep (see method.py)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from optrepro.config import BaseConfig
from optrepro.distill import kd_loss
from optrepro.errors import ConfigError
from optrepro.models import tiny_gpt
from optrepro.tasks import charlm

PID = "distillation_scaling_2025"


@dataclass
class Config(charlm.CharLMConfig):
    teacher_d_model: int = 128
    teacher_n_layer: int = 2
    teacher_n_head: int = 4
    teacher_steps: int = 960
    student_widths: list = field(default_factory=lambda: [32, 48])
    """Student widths (each with n_layer layers and student_heads heads), smallest first."""
    student_heads: int = 2
    budgets: list = field(default_factory=lambda: [120, 240, 480])
    """Student training steps (of train.batch_size windows), smallest first."""
    temperature: float = 1.0


def names(cfg: Config):
    """(width, steps, key) for every student setting: key s<i>_b<j>, student i and budget j counted
    from 1, smallest first (the metrics' names do not change with the scale's sizes)."""
    return [(w, b, f"s{i}_b{j}") for i, w in enumerate(cfg.student_widths, 1)
            for j, b in enumerate(cfg.budgets, 1)]


def preflight(cfg) -> None:
    if not isinstance(cfg, Config):
        if cfg.n_boot < 0:
            raise ConfigError(f"n_boot must be >= 0, got {cfg.n_boot}")
        return
    charlm.preflight(cfg)
    if not cfg.student_widths or not cfg.budgets:
        raise ConfigError("student_widths and budgets must each list at least one value")
    if sorted(cfg.budgets) != list(cfg.budgets) or sorted(cfg.student_widths) != list(cfg.student_widths):
        raise ConfigError("student_widths and budgets must be listed smallest first")
    if any(b < 1 for b in cfg.budgets) or cfg.teacher_steps < 1:
        raise ConfigError("budgets and teacher_steps must be >= 1 steps")
    for w, h in [(w, cfg.student_heads) for w in cfg.student_widths] + [(cfg.teacher_d_model, cfg.teacher_n_head)]:
        if w < 1 or h < 1 or w % h:
            raise ConfigError(f"width {w} does not split into {h} heads")
    if not cfg.temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {cfg.temperature}")
    if cfg.tokens or cfg.flops:
        raise ConfigError("budgets are in steps; tokens/flops budgets are not supported here")


def _phase(cfg: Config, seed_offset: int, **over) -> Config:
    torch.manual_seed(cfg.seed * 1000 + seed_offset)  # each model's initialisation, whatever ran before
    train = dataclasses.replace(cfg.train, steps=over.pop("steps"))
    return dataclasses.replace(cfg, train=train, **over)


def run(cfg: Config, ctx) -> dict:
    held = {}

    def teacher_model(vocab_size):
        held["t"] = tiny_gpt(vocab_size, cfg.context, cfg.teacher_d_model, cfg.teacher_n_layer, cfg.teacher_n_head,
                             cfg.arch)
        return held["t"]

    tcfg = _phase(cfg, 0, d_model=cfg.teacher_d_model, n_layer=cfg.teacher_n_layer, n_head=cfg.teacher_n_head,
                  steps=cfg.teacher_steps)
    out = {"teacher_loss": charlm.run(tcfg, ctx, make_model=teacher_model)["val_loss"]}
    teacher = held["t"].eval().requires_grad_(False)

    def distill(logits, x, y):
        with torch.no_grad():
            t = teacher(x)
        return kd_loss(logits, t, cfg.temperature)

    for i, (w, b, k) in enumerate(names(cfg)):
        sup = charlm.run(_phase(cfg, 1 + i, d_model=w, n_head=cfg.student_heads, steps=b), ctx)["val_loss"]
        dist = charlm.run(_phase(cfg, 1 + i, d_model=w, n_head=cfg.student_heads, steps=b), ctx, loss=distill)["val_loss"]
        out.update({f"sup_{k}": sup, f"dist_{k}": dist, f"gain_{k}": sup - dist})
    last = len(cfg.budgets)
    for i, w in enumerate(cfg.student_widths, 1):
        out[f"n_s{i}"] = tiny_gpt(2, cfg.context, w, cfg.n_layer, cfg.student_heads, cfg.arch).n_params()
        out[f"gain_trend_s{i}"] = out[f"gain_s{i}_b{last}"] - out[f"gain_s{i}_b1"]
        out[f"beyond_teacher_s{i}"] = out["teacher_loss"] - out[f"dist_s{i}_b{last}"]
    for j, b in enumerate(cfg.budgets, 1):
        out[f"tokens_b{j}"] = b * cfg.train.batch_size * cfg.context
    out = {k: float(v) for k, v in out.items()}
    ctx.log(cfg.teacher_steps, **out)
    return out


@dataclass
class LawConfig(BaseConfig):
    sweep_table: str = "sweep"
    holdout: str = ""
    """A teacher row of the sweep left out of the fit and predicted ('' : fit every teacher)."""
    n_boot: int = 200
    """Bootstrap resamples of the sweep's seeds (each refits the law)."""


def law_points(df):
    """One row per (teacher row, seed, student setting): L_T, L_sup, N, D, L_S, from the sweep's runs."""
    import pandas as pd
    recs = []
    for _, r in df.iterrows():
        for col in r.index:
            if not col.startswith("dist_s") or pd.isna(r[col]):
                continue
            i, j = col[len("dist_s"):].split("_b")
            recs.append({"row": r["row"], "seed": r["seed"], "setting": col[len("dist_"):],
                         "L_T": r["teacher_loss"], "L_sup": r[f"sup_s{i}_b{j}"], "L_S": r[col],
                         "N": r[f"n_s{i}"], "D": r[f"tokens_b{j}"]})
    return pd.DataFrame(recs)


def run_law(cfg: LawConfig, ctx) -> dict:
    import numpy as np
    import pandas as pd

    from optrepro.papers.distillation_scaling_2025.method import fit_distillation_law
    from optrepro.scaling import bootstrap, load_sweep
    ctx.no_checkpoint("a fit to finished runs: seconds")
    pts = law_points(load_sweep(ctx.out_root, PID, cfg.sweep_table, ctx.scale, min_points=2))
    rows = sorted(pts.row.unique())
    if cfg.holdout and cfg.holdout not in rows:
        raise ConfigError(f"holdout '{cfg.holdout}' is not a teacher row of the sweep; rows: {', '.join(rows)}")
    seeds = sorted(pts.seed.unique())

    def fit_on(seed_idx):
        chosen = [seeds[i] for i in seed_idx]
        sub = pd.concat([pts[pts.seed == s] for s in chosen], ignore_index=True)
        mean = sub.groupby(["row", "setting"], as_index=False)[["L_T", "L_sup", "L_S", "N", "D"]].mean()
        train = mean[mean.row != cfg.holdout]
        fit = fit_distillation_law(train.L_T, train.L_sup, train.N, train.D, train.L_S)
        test = mean[mean.row == cfg.holdout] if cfg.holdout else train
        err = np.abs(fit.predict(test.L_T, test.L_sup, test.N, test.D) - test.L_S) / test.L_S
        return {"fit_rmse_pct": fit.rmse_pct, "err_mean_pct": float(100 * err.mean()),
                "err_max_pct": float(100 * err.max()), **{k: fit.params[k] for k in ("c0", "c1", "d1", "f1")}}

    out = fit_on(range(len(seeds)))
    if cfg.n_boot:
        ci, _ = bootstrap(fit_on, len(seeds), n=cfg.n_boot, seed=cfg.seed)
        for k in ("err_mean_pct", "err_max_pct"):
            out[f"{k}_p05"], out[f"{k}_p95"] = ci[k]
    out.update(points=float(len(pts)), sweep_seeds=float(len(seeds)))
    out = {k: float(v) for k, v in out.items()}
    ctx.log(0, **out)
    return out
