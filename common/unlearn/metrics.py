"""TOFU's and MUSE's unlearning metrics, as defined there.

With P~(a|q) = P(a|q)^(1/|a|) (the length-normalized probability; loss = -log P~ is the token-mean NLL):

- Probability: forget and retain sets: mean P~(answer|q). General set (TOFU's real-world sets):
  mean P~(answer) / (P~(answer) + sum_k P~(perturbed_k)).
- ROUGE: ROUGE-L recall of the greedy answer against the true answer (rouge_score's tokenizer:
  lowercase alphanumeric words; no stemming here).
- Truth ratio (TOFU Eq. 1): R = mean_k P~(perturbed_k) / P~(paraphrase). On the forget set TOFU
  reports mean min(R, 1/R); on the other sets it counts mean max(0, 1 - R).
- Forget quality: the p-value of the two-sample Kolmogorov-Smirnov test between the forget-set
  statistics of the unlearned model and of the retain model. The statistic is TOFU's code's
  exp(mean_k loss_pert_k - loss_para) = P~(para) / geomean_k P~(pert_k) (a geometric mean, where
  the paper's R uses the arithmetic one; the KS test does not care about 1/x, only about the mean).
- Model utility: the harmonic mean of {probability, ROUGE, truth ratio} on the retain and general
  sets (TOFU uses retain, real authors and world facts: 9 numbers; here 6).
- MUSE: VerbMem = ROUGE-L F1 of the greedy continuation of the first half of a forget sequence
  against its second half; KnowMem = ROUGE-L F1 of the greedy answer to a *paraphrased* question.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from optrepro.errors import ConfigError
from optrepro.unlearn.lm import ANSWER, BOS, EOS, PAD, encode_pairs, seq_logprob

_WORD = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list:
    return _WORD.findall(text.lower())


def lcs(a: list, b: list) -> int:
    """Length of the longest common subsequence (dynamic programming, O(len(a) len(b)))."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> dict:
    """ROUGE-L precision, recall and F1 of `prediction` against `reference` (word-level LCS)."""
    p, r = rouge_tokens(prediction), rouge_tokens(reference)
    n = lcs(p, r)
    prec = n / len(p) if p else 0.0
    rec = n / len(r) if r else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1}


def truth_ratio(para_loss, pert_loss) -> np.ndarray:
    """R = mean_k P~(pert_k) / P~(para) per example; losses are token-mean NLLs, pert_loss (n, k)."""
    para, pert = np.asarray(para_loss, float), np.asarray(pert_loss, float)
    return np.exp(-pert).mean(-1) / np.exp(-para)


def ks_statistic_values(para_loss, pert_loss) -> np.ndarray:
    """TOFU code's per-example statistic for the KS test: exp(mean_k loss_pert_k - loss_para)."""
    return np.exp(np.asarray(pert_loss, float).mean(-1) - np.asarray(para_loss, float))


def ks_pvalue(a, b) -> float:
    """Two-sample two-sided KS test p-value (scipy's exact / asymptotic choice)."""
    from scipy.stats import ks_2samp
    return float(ks_2samp(np.asarray(a, float), np.asarray(b, float)).pvalue)


def forget_quality(unlearned: dict, retain: dict | None) -> float:
    """KS p-value between the forget-set truth-ratio statistics of the unlearned and the retain model.
    Each dict has 'para_loss' (n,) and 'pert_loss' (n, k) on the forget set."""
    if retain is None:
        raise ConfigError("forget quality needs the retain model's forget-set losses (TOFU compares against a "
                          "model never trained on the forget set); none was given")
    return ks_pvalue(ks_statistic_values(unlearned["para_loss"], unlearned["pert_loss"]),
                     ks_statistic_values(retain["para_loss"], retain["pert_loss"]))


def harmonic_mean(values) -> float:
    v = [float(x) for x in values]
    if any(not math.isfinite(x) or x < 0 for x in v):
        raise ValueError(f"harmonic mean of {v}: needs finite non-negative values")
    return 0.0 if any(x == 0 for x in v) else len(v) / sum(1 / x for x in v)


# ----- evaluation of a model --------------------------------------------------------------------

@torch.no_grad()
def answer_losses(model, tok, prompts, answers, context: int, batch: int = 256) -> np.ndarray:
    """Token-mean NLL of each answer given its prompt (-log P~)."""
    out = []
    for s in range(0, len(prompts), batch):
        b = encode_pairs(tok, prompts[s:s + batch], answers[s:s + batch], context)
        lp, n = seq_logprob(model, b)
        out.append((-lp / n).numpy())
    return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def qa_losses(model, tok, qa: list, context: int) -> dict:
    """gt_loss (n,), para_loss (n,), pert_loss (n, k): token-mean NLLs for one QA set."""
    qs = [x.question for x in qa]
    k = len(qa[0].perturbed)
    pert = answer_losses(model, tok, [q for q in qs for _ in range(k)], [p for x in qa for p in x.perturbed], context)
    return {"gt_loss": answer_losses(model, tok, qs, [x.answer for x in qa], context),
            "para_loss": answer_losses(model, tok, qs, [x.paraphrase for x in qa], context),
            "pert_loss": pert.reshape(len(qa), k)}


@torch.no_grad()
def greedy(model, tok, prefixes: list, max_new: int, context: int) -> list:
    """Greedy continuations (token id lists, up to <eos>) of already-encoded prefixes; prefixes of
    equal length run as one batch, so no padding enters a forward pass."""
    out = [None] * len(prefixes)
    by_len = {}
    for i, p in enumerate(prefixes):
        by_len.setdefault(len(p), []).append(i)
    for L, idx in by_len.items():
        ids = torch.tensor([prefixes[i] for i in idx], dtype=torch.long)
        done = torch.zeros(len(idx), dtype=torch.bool)
        for _ in range(min(max_new, context - L)):
            nxt = model(ids[:, -context:])[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            done |= nxt == EOS
            ids = torch.cat([ids, nxt[:, None]], 1)
            if bool(done.all()):
                break
        for j, i in enumerate(idx):
            gen = ids[j, L:].tolist()
            out[i] = gen[:gen.index(EOS)] if EOS in gen else gen
    return out


def generate_answers(model, tok, questions: list, context: int, max_new: int = 32) -> list:
    prefixes = [[BOS] + tok.encode(q) + tok.encode(ANSWER) for q in questions]
    return [tok.decode(g) for g in greedy(model, tok, prefixes, max_new, context)]


def verbatim_memorization(model, tok, qa: list, context: int) -> float:
    """MUSE VerbMem: mean ROUGE-L F1 of the greedy continuation of each forget sequence's first half
    (the question and the first half of the answer's tokens) against the rest of the answer."""
    prefixes, refs = [], []
    for x in qa:
        a = tok.encode(x.answer)
        h = len(a) // 2
        prefixes.append([BOS] + tok.encode(x.question) + tok.encode(ANSWER) + a[:h])
        refs.append(tok.decode(a[h:]))
    gens = greedy(model, tok, prefixes, 32, context)
    return float(np.mean([rouge_l(tok.decode(g), r)["f1"] for g, r in zip(gens, refs)]))


@dataclass
class SetEval:
    prob: float
    rouge: float
    truth_ratio: float
    losses: dict
    rouges: np.ndarray
    acc: float
    """Share of greedy answers equal to the true answer (exact match; not a TOFU metric)."""


def eval_set(model, tok, qa: list, context: int, kind: str) -> SetEval:
    """kind: forget | retain | general (general: probability normalized over the answer options;
    truth ratio as max(0, 1 - R) except on the forget set, where it is min(R, 1/R))."""
    L = qa_losses(model, tok, qa, context)
    p_gt = np.exp(-L["gt_loss"])
    if kind == "general":
        prob = float(np.mean(p_gt / (p_gt + np.exp(-L["pert_loss"]).sum(-1))))
    else:
        prob = float(np.mean(p_gt))
    R = truth_ratio(L["para_loss"], L["pert_loss"])
    tr = float(np.mean(np.minimum(R, 1 / R))) if kind == "forget" else float(np.mean(np.maximum(0, 1 - R)))
    gens = generate_answers(model, tok, [x.question for x in qa], context)
    rouges = np.array([rouge_l(g, x.answer)["recall"] for g, x in zip(gens, qa)])
    acc = float(np.mean([g == x.answer for g, x in zip(gens, qa)]))
    return SetEval(prob, float(rouges.mean()), tr, L, rouges, acc)


def evaluate(model, tok, sets: dict, context: int, retain_forget: dict | None, muse: bool = True) -> dict:
    """TOFU's numbers for a model. sets: forget / retain / general QA lists; retain_forget: the retain
    model's forget-set losses (qa_losses) for forget quality (required)."""
    was = model.training
    model.eval()
    ev = {k: eval_set(model, tok, sets[k], context, k) for k in ("forget", "retain", "general")}
    out = {}
    for k, e in ev.items():
        out.update({f"{k}_prob": e.prob, f"{k}_rouge": e.rouge, f"{k}_tr": e.truth_ratio, f"{k}_acc": e.acc})
    out["forget_quality"] = forget_quality(ev["forget"].losses, retain_forget)
    out["log10_fq"] = math.log10(max(out["forget_quality"], 1e-300))
    out["model_utility"] = harmonic_mean([out[f"{k}_{m}"] for k in ("retain", "general") for m in ("prob", "rouge", "tr")])
    if muse:
        out["verbmem"] = verbatim_memorization(model, tok, sets["forget"], context)
        gens = generate_answers(model, tok, [x.question2 for x in sets["forget"]], context)
        out["knowmem"] = float(np.mean([rouge_l(g, x.answer)["f1"] for g, x in zip(gens, sets["forget"])]))
    model.train(was)
    out["_forget"] = ev["forget"]
    return out
