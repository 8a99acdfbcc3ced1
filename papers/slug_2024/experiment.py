"""slug_2024: one row = one unlearning method, one seed, on one of two benchmarks:
- bench: qa      the offline TOFU-style benchmark (common.tasks.unlearn_qa), SLUG as a one-shot method
                 stopped when the forget answers' mean P~ falls to the retain model's;
- bench: digits  a digits MLP forgetting one class (common.tasks.unlearn_digits), SLUG stopped when
                 the forget class's training accuracy is at most digits.forget_target."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from optrepro.errors import ConfigError
from optrepro.tasks import unlearn_digits, unlearn_qa
from optrepro.unlearn.lm import Batch, nll_loss, seq_logprob

from .method import slug

BENCHES = ("qa", "digits")


@dataclass
class Config(unlearn_qa.UnlearnQAConfig):
    bench: str = "qa"
    digits: unlearn_digits.DigitsUnlearnConfig = field(default_factory=unlearn_digits.DigitsUnlearnConfig)
    """The digits benchmark's settings (its method and seed are this row's)."""


def preflight(cfg: Config) -> None:
    if cfg.lm.pretrained:
        raise ConfigError(f"lm.pretrained '{cfg.lm.pretrained}' is the paper's full-scale model (CLIP, Stable Diffusion, "
                          "LLaVA): this repository does not download weights or the identity data; run --scale mini")
    if cfg.bench not in BENCHES:
        raise ConfigError(f"bench '{cfg.bench}' unknown; valid: {', '.join(BENCHES)}")
    if cfg.bench == "qa":
        unlearn_qa.preflight(cfg, one_shot_methods=("slug",))
    else:
        cfg.digits.method = cfg.method
        unlearn_digits.preflight(cfg.digits, one_shot_methods=("slug",))


def _slug_digits(model, forget_loss, retain_loss, forgot, retain_metric) -> dict:
    r = slug(model, forget_loss, retain_loss, forgot, retain_metric)
    return {"evals": float(r.evals), "slug_lambda": r.lam, "front_size": float(len(r.front)),
            "layer_index": float(list(r.scores).index(r.layer))}


def _slug_qa(bench, model, cfg) -> dict:
    t0 = time.perf_counter()
    nf = bench.forget.ids.shape[0]
    g = torch.Generator().manual_seed(cfg.seed + 4)
    ri = torch.randperm(bench.retain.ids.shape[0], generator=g)[:nf]
    rb = Batch(bench.retain.ids[ri], bench.retain.mask[ri])
    ref = float(np.mean(np.exp(-bench.ref_forget_losses["gt_loss"])))

    def mean_p(b):
        with torch.no_grad():
            lp, n = seq_logprob(model, b)
            return float(torch.exp(lp / n).mean())
    r = slug(model.train(), lambda: nll_loss(model, bench.forget), lambda: nll_loss(model, rb),
             lambda: mean_p(bench.forget) <= ref, lambda: mean_p(rb))
    model.eval()
    return {"steps": 1.0, "unlearn_s": time.perf_counter() - t0, "grad_seqs": float(nf + len(ri)),
            "search_evals": float(r.evals), "slug_lambda": r.lam, "front_size": float(len(r.front))}


def run(cfg: Config, ctx) -> dict:
    if cfg.bench == "digits":
        cfg.digits.seed, cfg.digits.method = cfg.seed, cfg.method
        return unlearn_digits.run(cfg.digits, ctx, one_shot=_slug_digits if cfg.method == "slug" else None)
    return unlearn_qa.run(cfg, ctx, one_shot=_slug_qa if cfg.method == "slug" else None)
