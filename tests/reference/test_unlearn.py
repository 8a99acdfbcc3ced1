"""common.unlearn against hand-computed values, closed forms and the official ROUGE package."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from optrepro.errors import ConfigError
from optrepro.unlearn import facts as F_
from optrepro.unlearn import losses as U
from optrepro.unlearn import metrics as M
from optrepro.unlearn.lm import LMSpec, build_lm, encode_pairs, seq_logprob, tokenizer

pytestmark = pytest.mark.reference


# ----- metrics: hand-computed values -------------------------------------------------------------

def test_rouge_l_hand_computed():
    # reference: the cat sat on the mat (6 words); prediction: the cat on a mat (5); LCS: the cat on mat (4)
    r = M.rouge_l("the cat on a mat", "the cat sat on the mat")
    assert r["recall"] == pytest.approx(4 / 6)
    assert r["precision"] == pytest.approx(4 / 5)
    assert r["f1"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    assert M.rouge_l("", "a b")["recall"] == 0.0
    assert M.rouge_l("Born in 1957.", "born IN 1957")["recall"] == 1.0  # lowercase, punctuation dropped


def test_rouge_l_matches_rouge_score_package():
    """Against Google's rouge-score, run in a subprocess: importing it (absl logging) in the test process
    breaks pytest's output capture for every later test."""
    import json
    import subprocess
    import sys
    pytest.importorskip("rouge_score")
    rng = random.Random(0)
    words = "the a cat dog sat ran on in mat house 1957 Paris".split()
    pairs = [(" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))),
              " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))) for _ in range(200)]
    code = ("import json, sys\nfrom rouge_score import rouge_scorer\n"
            "s = rouge_scorer.RougeScorer(['rougeL'], use_stemmer=False)\n"
            "out = [list(s.score(r, p)['rougeL']) for p, r in json.load(sys.stdin)]\nprint(json.dumps(out))")
    res = subprocess.run([sys.executable, "-c", code], input=json.dumps(pairs), capture_output=True, text=True,
                         check=True)
    for (pred, ref), (p, r, f) in zip(pairs, json.loads(res.stdout)):
        ours = M.rouge_l(pred, ref)
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f), abs=1e-12)


def test_ks_pvalue_hand_computed():
    # fully separated samples of 3 and 3: D = 1; exact two-sided p = 2 / C(6, 3) = 0.1
    assert M.ks_pvalue([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / math.comb(6, 3))
    assert M.ks_pvalue([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / math.comb(8, 4))
    assert M.ks_pvalue([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_truth_ratio_hand_computed():
    # P~(para) = 1/2, P~(pert) = 1/4 and 1/8: R = mean(1/4, 1/8) / (1/2) = 0.375
    para, pert = np.log([2.0]), np.log([[4.0, 8.0]])
    assert M.truth_ratio(para, pert)[0] == pytest.approx(0.375)
    # TOFU code's KS statistic: exp(mean(log 4, log 8) - log 2) = sqrt(32) / 2
    assert M.ks_statistic_values(para, pert)[0] == pytest.approx(math.sqrt(32) / 2)


def test_forget_quality_is_ks_of_the_statistics_and_needs_the_retain_model():
    u = {"para_loss": np.log([2.0, 2.0, 2.0]), "pert_loss": np.log([[4.0], [5.0], [6.0]])}
    r = {"para_loss": np.log([2.0, 2.0, 2.0]), "pert_loss": np.log([[1.0], [1.5], [1.8]])}
    assert M.forget_quality(u, r) == pytest.approx(0.1)  # separated: 2 / C(6, 3)
    assert M.forget_quality(u, u) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="retain model"):
        M.forget_quality(u, None)


def test_harmonic_mean():
    assert M.harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert M.harmonic_mean([0.2, 0.0, 0.9]) == 0.0
    with pytest.raises(ValueError):
        M.harmonic_mean([0.5, float("nan")])


# ----- losses: closed forms -----------------------------------------------------------------------

def test_npo_loss_hand_computed_and_ga_limit():
    # β = 1, log π = -2, log π_ref = -1: 2 log(1 + π/π_ref) = 2 log(1 + e^-1)
    assert float(U.npo_loss(torch.tensor([-2.0]), torch.tensor([-1.0]), 1.0)) == pytest.approx(2 * math.log1p(math.exp(-1)))
    # gradient wrt log π is the weight 2 σ(β (log π - log π_ref)) = 2 π^β / (π^β + π_ref^β) (NPO Eq. 4) ...
    for beta in (0.5, 1.0, 3.0):
        lp = torch.tensor([-2.0], requires_grad=True)
        U.npo_loss(lp, torch.tensor([-1.0]), beta).backward()
        assert float(lp.grad) == pytest.approx(2 / (1 + math.exp(beta * 1.0)))
    # ... which tends to 1 as β -> 0: GA on the summed log-likelihood (Prop. 1)
    lp = torch.tensor([-2.0], requires_grad=True)
    U.npo_loss(lp, torch.tensor([-1.0]), 1e-6).backward()
    assert float(lp.grad) == pytest.approx(1.0, abs=1e-5)


def test_simnpo_loss_hand_computed():
    # β = 2, γ = 0, log π = -4 over 2 tokens: -(2/2) log σ((2/2)(4/2)·...) = log(1 + e^-4)
    v = U.simnpo_loss(torch.tensor([-4.0]), torch.tensor([2.0]), 2.0, 0.0)
    assert float(v) == pytest.approx(math.log1p(math.exp(-4.0)))
    # a margin γ raises the loss: -log σ(4 - 1) = log(1 + e^-3)
    v = U.simnpo_loss(torch.tensor([-4.0]), torch.tensor([2.0]), 2.0, 1.0)
    assert float(v) == pytest.approx(math.log1p(math.exp(-3.0)))


def _tiny():
    torch.manual_seed(0)
    lm = LMSpec(d_model=16, n_layer=1, n_head=2, context=48)
    return lm, build_lm(lm).eval(), tokenizer(lm.vocab_general)


def test_seq_logprob_is_the_sum_over_answer_tokens():
    lm, model, tok = _tiny()
    b = encode_pairs(tok, ["Where was Ana Bel born?", "What is the capital of France?"],
                     ["Ana Bel was born in Paris.", "The capital of France is Paris."], lm.context)
    lp, n = seq_logprob(model, b)
    for i, (q, a) in enumerate([("Where was Ana Bel born?", "Ana Bel was born in Paris."),
                                ("What is the capital of France?", "The capital of France is Paris.")]):
        prompt = [2] + tok.encode(q) + tok.encode("Answer :")
        ans = tok.encode(a) + [3]
        ids = torch.tensor([prompt + ans])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[:, :-1]), -1)[0]
        want = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(ans))
        assert float(lp[i].detach()) == pytest.approx(want, abs=1e-4)
        assert int(n[i]) == len(ans)


def test_objectives_match_their_equations():
    lm, model, tok = _tiny()
    _, qa = F_.make_facts(F_.FactSpec(n_authors=4, attrs=2), 0)
    fb = encode_pairs(tok, [x.question for x in qa[:3]], [x.answer for x in qa[:3]], lm.context)
    rb = encode_pairs(tok, [x.question for x in qa[3:]], [x.answer for x in qa[3:]], lm.context)
    with torch.no_grad():
        lpf, nf = seq_logprob(model, fb)
        lpr, nr = seq_logprob(model, rb)
        nll_f, nll_r = -lpf.sum() / nf.sum(), -lpr.sum() / nr.sum()
        ref = lpf + 0.3
        assert float(U.objective("ga", model, fb, rb)) == pytest.approx(float(-nll_f), rel=1e-5)
        assert float(U.objective("graddiff", model, fb, rb, retain_weight=2.0)) == pytest.approx(float(-nll_f + 2 * nll_r), rel=1e-5)
        assert float(U.objective("retain_ft", model, fb, rb)) == pytest.approx(float(nll_r), rel=1e-5)
        npo = -(2 / 0.5) * torch.log(torch.sigmoid(-0.5 * (lpf - ref))).mean()
        assert float(U.objective("npo", model, fb, rb, ref, beta=0.5)) == pytest.approx(float(npo), rel=1e-5)
        assert float(U.objective("npo_rt", model, fb, rb, ref, beta=0.5)) == pytest.approx(float(npo + nll_r), rel=1e-5)
        sim = -(2 / 2.5) * torch.log(torch.sigmoid(-(2.5 / nf) * lpf - 0.2)).mean() + nll_r
        assert float(U.objective("simnpo", model, fb, rb, beta=2.5, gamma=0.2)) == pytest.approx(float(sim), rel=1e-5)
    with pytest.raises(ConfigError, match="reference"):
        U.objective("npo", model, fb, rb, None)


def test_greedy_batched_by_length_equals_one_by_one():
    lm, model, tok = _tiny()
    qs = ["Where was Ana Bel born?", "What is the capital of France?", "Who was the mentor of Ana Bel?"]
    together = M.generate_answers(model, tok, qs, lm.context, max_new=6)
    alone = [M.generate_answers(model, tok, [q], lm.context, max_new=6)[0] for q in qs]
    assert together == alone


# ----- the fact generator and the splits ----------------------------------------------------------

def test_facts_are_deterministic_and_round_trip_through_the_tokenizer():
    spec = F_.FactSpec(n_authors=30)
    n1, qa1 = F_.make_facts(spec, 3)
    n2, qa2 = F_.make_facts(spec, 3)
    assert n1 == n2 and [x.answer for x in qa1] == [x.answer for x in qa2]
    assert len(set(n1)) == 30 and len(qa1) == 30 * spec.attrs
    tok = tokenizer()
    for x in qa1 + F_.general_facts():
        assert tok.decode(tok.encode(x.answer)) == x.answer  # exact match is well defined
        assert x.answer == x.paraphrase  # truth_template: answer (the default)
        assert len(set(x.perturbed)) == spec.n_perturbed and x.answer not in x.perturbed
    _, para = F_.make_facts(F_.FactSpec(n_authors=8, truth_template="paraphrase"), 0)
    assert all(x.paraphrase != x.answer for x in para)


def test_forget_splits_are_nested_disjoint_and_cover_everything():
    spec = F_.FactSpec(n_authors=100)
    _, qa = F_.make_facts(spec, 0)
    prev = set()
    for frac in (0.01, 0.05, 0.1, 0.5):
        s = F_.forget_split(qa, spec.n_authors, frac)
        assert len(s.forget) == round(frac * 100) * spec.attrs
        assert not set(s.forget) & set(s.retain) and len(s.forget) + len(s.retain) == len(qa)
        assert prev <= set(s.forget)  # TOFU: forget01 within forget05 within forget10
        prev = set(s.forget)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_forget_fraction_outside_open_interval_is_an_error(frac):
    _, qa = F_.make_facts(F_.FactSpec(n_authors=10), 0)
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        F_.forget_split(qa, 10, frac)


def test_overlapping_custom_split_is_an_error():
    _, qa = F_.make_facts(F_.FactSpec(n_authors=10), 0)
    with pytest.raises(ConfigError, match="overlaps"):
        F_.custom_split(qa, F_.SplitSpec(forget_authors=[1, 2], retain_authors=[2, 3]), 10)
    s = F_.custom_split(qa, F_.SplitSpec(forget_authors=[1], retain_authors=[0, 2]), 10)
    assert {qa[i].entity for i in s.forget} == {1} and {qa[i].entity for i in s.retain} == {0, 2}
