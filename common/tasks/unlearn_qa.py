"""One unlearning run on the offline TOFU-style benchmark (common.unlearn), one method, one seed.

1. The target model (the tiny GPT-2 pretrained on pydoc + general facts, fine-tuned on every
   fictitious fact) and the retain reference (fine-tuned on the retain split only) come from the
   per-seed cache; the forget set is the last `forget_frac` of the authors.
2. The method runs for `epochs` passes over the forget set (a forget batch and, for methods with a
   retain term, a retain batch per step), evaluated every `eval_every` steps: the trade-off curve.
3. The final model gets TOFU's metrics (forget quality against the retain model, model utility,
   ROUGE, probability, truth ratio), MUSE's memorization, a breakdown by answer length, and a
   relearning attack: `relearn_steps` of fine-tuning on a `relearn_frac` share of the forget set,
   scored on the rest of it.

Rows `target` and `retain` evaluate those two models unchanged (the two ends of the scale);
`one_shot(bench, model)` lets a paper run a non-iterative method (SLUG) on the same bench.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError, Diverged
from optrepro.unlearn import facts as F_
from optrepro.unlearn import losses as U
from optrepro.unlearn import metrics as M
from optrepro.unlearn.lm import (LMSpec, Batch, check_lm, finetuned, nll_loss, qa_batch, retain_model, seq_logprob,
                               tokenizer, train_steps)

REFERENCE_ROWS = ("target", "retain")


@dataclass
class UnlearnQAConfig(BaseConfig):
    method: str = "npo"
    """ga | graddiff | npo | npo_rt | simnpo | retain_ft (common.unlearn.losses); target | retain: evaluate
    that model unchanged; a paper's one-shot method (slug) names itself."""
    forget_frac: float = 0.1
    """Share of the authors to forget (TOFU: 0.01, 0.05, 0.1); must be in (0, 1)."""
    lm: LMSpec = field(default_factory=LMSpec)
    facts: F_.FactSpec = field(default_factory=F_.FactSpec)
    split: F_.SplitSpec = field(default_factory=F_.SplitSpec)
    """Custom forget / retain authors (overrides forget_frac; must not overlap)."""
    epochs: float = 5.0
    """Passes over the forget set (TOFU: 5)."""
    batch_size: int = 16
    lr: float = 1e-3
    beta: float = 0.1
    """NPO / SimNPO inverse temperature β."""
    gamma: float = 0.0
    """SimNPO's reward margin γ."""
    retain_weight: float = 1.0
    """λ of the retain term (GradDiff, NPO+RT, SimNPO)."""
    evals: int = 6
    """Evaluations along the way (the trade-off curve), besides the start and the end."""
    n_retain_eval: int = 200
    """Retain-set examples the utility is measured on (TOFU: 400 of 3,600-4,000)."""
    retain_ref: str = "train"
    """The forget-quality reference: train (the cached retain model for this split), none (forget
    quality is not computed: an error, since every table reports it) or a path to a state_dict file."""
    relearn_steps: int = 20
    relearn_frac: float = 0.25
    relearn_lr: float = 1e-3


def preflight(cfg: UnlearnQAConfig, one_shot_methods=()) -> None:
    check_lm(cfg.lm)
    F_._check_spec(cfg.facts)
    if cfg.split.forget_authors or cfg.split.retain_authors:
        F_.custom_split([], cfg.split, cfg.facts.n_authors)
    else:
        F_.check_frac(cfg.forget_frac)
    valid = U.METHODS + REFERENCE_ROWS + tuple(one_shot_methods)
    if cfg.method not in valid:
        raise ConfigError(f"method '{cfg.method}' unknown; valid: {', '.join(valid)}")
    U.check_method("ga" if cfg.method not in U.METHODS else cfg.method, cfg.beta)
    if cfg.retain_ref == "none":
        raise ConfigError("retain_ref is 'none' but forget quality is reported: it needs the retain model "
                          "(retain_ref: train, or a path to its state_dict)")
    if cfg.retain_ref != "train" and not Path(cfg.retain_ref).is_file():
        raise ConfigError(f"retain_ref '{cfg.retain_ref}': no such file (the retain model's state_dict is needed "
                          "for forget quality)")
    if not 0 < cfg.relearn_frac < 1:
        raise ConfigError(f"relearn_frac must be in (0, 1), got {cfg.relearn_frac}")
    if cfg.epochs <= 0 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.relearn_steps < 0 or cfg.evals < 0:
        raise ConfigError("epochs, batch_size and lr must be > 0; relearn_steps and evals >= 0")


@dataclass
class Bench:
    """Everything a method needs, built once per run."""
    cfg: UnlearnQAConfig
    tok: object
    target: torch.nn.Module
    retain_ref: torch.nn.Module
    sets: dict
    forget: Batch
    retain: Batch
    ref_forget_losses: dict
    """The retain model's forget-set losses (forget quality's reference sample)."""
    long_mask: np.ndarray
    """Forget examples whose answer is longer than the median (in tokens)."""

    def evaluate(self, model, muse: bool = True) -> dict:
        out = M.evaluate(model, self.tok, self.sets, self.cfg.lm.context, self.ref_forget_losses, muse=muse)
        fe = out.pop("_forget")
        p = np.exp(-fe.losses["gt_loss"])
        for name, m in (("long", self.long_mask), ("short", ~self.long_mask)):
            out[f"forget_prob_{name}"] = float(p[m].mean())
            out[f"forget_rouge_{name}"] = float(fe.rouges[m].mean())
        out["forget_prob_gap"] = out["forget_prob_long"] - out["forget_prob_short"]
        return out


def build_bench(cfg: UnlearnQAConfig, ctx) -> tuple:
    root = getattr(ctx, "out_root", None) or Path("runs")
    log = lambda s, loss: ctx.log(s, cache_train_loss=loss)
    tok = tokenizer(cfg.lm.vocab_general)
    _, qa = F_.make_facts(cfg.facts, cfg.seed)
    if cfg.split.forget_authors or cfg.split.retain_authors:
        sp = F_.custom_split(qa, cfg.split, cfg.facts.n_authors)
        if cfg.retain_ref == "train":
            raise ConfigError("a custom split has no cached retain model: give retain_ref a state_dict path")
    else:
        sp = F_.forget_split(qa, cfg.facts.n_authors, cfg.forget_frac)
    target, info = finetuned(cfg.lm, cfg.facts, cfg.seed, root, log=log)
    if cfg.retain_ref == "train":
        ref, rinfo = retain_model(cfg.lm, cfg.facts, cfg.seed, root, sp.frac, log=log)
    else:
        from optrepro.io import safe_torch_load
        from optrepro.unlearn.lm import build_lm
        ref, rinfo = build_lm(cfg.lm), {}
        ref.load_state_dict(safe_torch_load(cfg.retain_ref))
    info.update(rinfo)
    forget = [qa[i] for i in sp.forget]
    retain = [qa[i] for i in sp.retain]
    g = torch.Generator().manual_seed(cfg.seed + 3)
    retain_eval = [retain[i] for i in torch.randperm(len(retain), generator=g)[:cfg.n_retain_eval].tolist()]
    sets = {"forget": forget, "retain": retain_eval, "general": F_.general_facts(cfg.facts.n_perturbed)}
    lens = np.array([len(tok.encode(x.answer)) for x in forget])
    ref.eval()
    bench = Bench(cfg, tok, target, ref, sets, qa_batch(tok, forget, cfg.lm.context),
                  qa_batch(tok, retain, cfg.lm.context), M.qa_losses(ref, tok, forget, cfg.lm.context),
                  lens > np.median(lens))
    info.update(n_forget=float(len(forget)), n_retain=float(len(retain)))
    return bench, info


def relearn(bench: Bench, model, cfg: UnlearnQAConfig) -> dict:
    """Fine-tune a copy on the first `relearn_frac` of the forget set (a fixed random subset), then score
    the held-out rest: exact-match accuracy, ROUGE and probability, before and after."""
    n = bench.forget.ids.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 5)).tolist()
    k = max(1, int(cfg.relearn_frac * n))
    seen, held = perm[:k], perm[k:] or perm[:k]
    held_qa = [bench.sets["forget"][i] for i in held]

    def score(m, tag):
        e = M.eval_set(m, bench.tok, held_qa, cfg.lm.context, "forget")
        return {f"{tag}_acc": e.acc, f"{tag}_rouge": e.rouge, f"{tag}_prob": e.prob}
    out = score(model, "held")
    if cfg.relearn_steps:
        m = copy.deepcopy(model)
        fb = Batch(bench.forget.ids[seen], bench.forget.mask[seen])
        m.train()
        train_steps(m, lambda s, idx: nll_loss(m, Batch(fb.ids[idx], fb.mask[idx])), len(seen), cfg.relearn_steps,
                    cfg.batch_size, cfg.relearn_lr, cfg.seed + 9, weight_decay=0.0)
        m.eval()
        out.update(score(m, "relearn"))
    return out


def iterate(bench: Bench, model, cfg: UnlearnQAConfig, ctx) -> dict:
    """Run an iterative unlearning method; log the trade-off curve; return cost counters."""
    nf, nr = bench.forget.ids.shape[0], bench.retain.ids.shape[0]
    bs = min(cfg.batch_size, nf)
    steps = max(1, int(round(cfg.epochs * -(-nf // bs))))
    ref_logp = None
    if cfg.method in U.NEEDS_REF:
        with torch.no_grad():
            ref_logp = seq_logprob(bench.target.eval(), bench.forget)[0]
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    eval_at = {int(round(steps * (i + 1) / (cfg.evals + 1))) for i in range(cfg.evals)} - {0, steps}
    lp = {"fperm": torch.randperm(nf, generator=gen), "fpos": 0, "t_train": 0.0, "seqs": 0}
    model.train()
    for s in ctx.steps(steps, {"model": model, "opt": opt, "gen": gen, "loop": lp}):
        if lp["fpos"] + bs > nf:
            lp["fperm"], lp["fpos"] = torch.randperm(nf, generator=gen), 0
        fi = lp["fperm"][lp["fpos"]:lp["fpos"] + bs]
        lp["fpos"] += bs
        ri = torch.randint(0, nr, (bs,), generator=gen)
        t0 = time.perf_counter()
        loss = U.objective(cfg.method, model, Batch(bench.forget.ids[fi], bench.forget.mask[fi]),
                           Batch(bench.retain.ids[ri], bench.retain.mask[ri]),
                           None if ref_logp is None else ref_logp[fi], cfg.beta, cfg.gamma, cfg.retain_weight)
        if not torch.isfinite(loss):  # before the step: a NaN never reaches the weights
            raise Diverged(s, "loss", float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lp["t_train"] += time.perf_counter() - t0
        lp["seqs"] += bs * (2 if cfg.method in U.USES_RETAIN and cfg.method != "retain_ft" else 1)
        if s in eval_at:
            model.eval()
            ev = bench.evaluate(model, muse=False)
            model.train()
            ctx.log(s, loss=float(loss.detach()), **_curve(ev))
    model.eval()
    return {"steps": float(steps), "unlearn_s": lp["t_train"], "grad_seqs": float(lp["seqs"])}


def _curve(ev: dict) -> dict:
    return {k: ev[k] for k in ("forget_quality", "log10_fq", "model_utility", "forget_rouge", "forget_prob",
                               "forget_acc", "retain_rouge", "general_rouge")}


def run(cfg: UnlearnQAConfig, ctx, one_shot=None) -> dict:
    """`one_shot(bench, model, cfg) -> dict` (cost counters) replaces the iterative loop."""
    bench, info = build_bench(cfg, ctx)
    start = bench.evaluate(bench.target, muse=False)
    ctx.log(0, **_curve(start))
    out = {**info, "target_utility": start["model_utility"], "target_forget_rouge": start["forget_rouge"],
           "target_log10_fq": start["log10_fq"]}
    if cfg.method in REFERENCE_ROWS or one_shot is not None:
        ctx.no_checkpoint("a reference model or a one-shot edit: its trainings resume inside their cache builds")
    if cfg.method == "target":
        model, cost = bench.target, {"steps": 0.0, "unlearn_s": 0.0, "grad_seqs": 0.0}
    elif cfg.method == "retain":
        model, cost = bench.retain_ref, {"steps": 0.0, "unlearn_s": 0.0, "grad_seqs": 0.0}
    else:
        model = copy.deepcopy(bench.target)
        cost = one_shot(bench, model, cfg) if one_shot is not None else iterate(bench, model, cfg, ctx)
    final = bench.evaluate(model)
    steps = int(cost["steps"])
    ctx.log(max(steps, 1) if cfg.method not in REFERENCE_ROWS else 0, **_curve(final))
    out.update(final)
    out.update(cost)
    out["utility_ratio"] = final["model_utility"] / max(start["model_utility"], 1e-12)
    out.update(relearn(bench, model, cfg))
    return out
