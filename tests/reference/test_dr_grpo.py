"""dr_grpo_2025 (common.rl.lmrl) against trl 1.16's GRPOTrainer on the same batch and the same model.

- Losses: `policy_loss` equals GRPOTrainer._compute_loss for loss_type grpo and dr_grpo (beta = 0), on a
  batch of prompts, completions of different lengths, advantages and old log-probabilities (ratios != 1, so
  the clipping is exercised); also its gradient.
- Advantages: `group_advantages` equals the advantages GRPOTrainer computes from the rewards of its own
  sampled completions, for scale_rewards group (GRPO) and none (Dr. GRPO).
- `completion_logps` equals trl's per-token log-probabilities.
- The length bias, in closed form: under grpo a wrong completion's token weight is A / |o|, under dr_grpo
  A / max_len whatever its length.
"""
import warnings

import pytest
import torch

from optrepro.rl.lmrl import Arithmetic, completion_logps, group_advantages, policy_loss, sample

pytestmark = pytest.mark.reference
trl = pytest.importorskip("trl")
VOCAB = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("0123456789+=.")}}


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.WordLevel(VOCAB, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")


def _model():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                        max_position_embeddings=64, pad_token_id=0, eos_token_id=1, bos_token_id=1))


def _trainer(model, loss_type, scale, tmp_path, reward=None):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    args = GRPOConfig(output_dir=str(tmp_path), loss_type=loss_type, beta=0.0, scale_rewards=scale, num_generations=4,
                      per_device_train_batch_size=8, max_completion_length=8, max_steps=1, report_to=[],
                      use_cpu=True, save_strategy="no", bf16=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = GRPOTrainer(model=model, reward_funcs=reward or (lambda completions, **kw: [0.0] * len(completions)),
                         args=args, train_dataset=Dataset.from_dict({"prompt": ["12+3="] * 8}),
                         processing_class=_tokenizer())
    tr.current_gradient_accumulation_steps = 1  # set by trl's training loop
    return tr


def _batch():
    g = torch.Generator().manual_seed(1)
    B, P, T = 4, 5, 8
    prompt = torch.randint(2, 15, (B, P), generator=g)
    comp = torch.randint(2, 15, (B, T), generator=g)
    mask = (torch.arange(T)[None] < torch.tensor([[3], [8], [5], [1]])).long()
    adv = torch.tensor([1.0, -0.5, 0.3, -1.2])
    return prompt, comp, mask, adv


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
def test_loss_equals_trl(loss_type, tmp_path):
    model = _model()
    tr = _trainer(model, loss_type, "group" if loss_type == "grpo" else "none", tmp_path)
    prompt, comp, mask, adv = _batch()
    logits_fn = lambda ids: model(input_ids=ids).logits  # noqa: E731
    with torch.no_grad():  # old log-probs of a slightly different policy: ratios away from 1, some clipped
        old = completion_logps(logits_fn, prompt, comp) + 0.3 * torch.randn(comp.shape, generator=torch.Generator().manual_seed(2))
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt), "completion_ids": comp,
              "completion_mask": mask, "advantages": adv, "old_per_token_logps": old}
    model.train()
    ref = tr._compute_loss(model, inputs)
    ref_grad = torch.autograd.grad(ref, list(model.parameters()), allow_unused=True)
    ours = policy_loss(completion_logps(logits_fn, prompt, comp), old, mask, adv, loss_type, max_len=8,
                       eps_low=tr.epsilon_low, eps_high=tr.epsilon_high)
    our_grad = torch.autograd.grad(ours, list(model.parameters()), allow_unused=True)
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5, abs=1e-7)
    for a, b in zip(our_grad, ref_grad):
        if a is not None or b is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("scale", ["group", "none"])
def test_advantages_equal_trl(scale, tmp_path):
    seen = {}

    def reward(completions, **kw):
        r = [float(c.count("5")) for c in completions]  # a deterministic reward that varies within groups
        seen["r"] = r
        return r
    model = _model()
    tr = _trainer(model, "grpo" if scale == "group" else "dr_grpo", scale, tmp_path, reward)
    model.train()
    torch.manual_seed(3)
    out = tr._generate_and_score_completions([{"prompt": "12+3="}] * 4 + [{"prompt": "4+5="}] * 4)
    ours = group_advantages(torch.tensor(seen["r"]), 4, scale)
    assert torch.tensor(seen["r"]).reshape(2, 4).std(1).gt(0).any()  # the groups are not all constant
    assert torch.allclose(ours, out["advantages"].float(), atol=1e-5)


def test_logps_equal_trl(tmp_path):
    model = _model()
    tr = _trainer(model, "dr_grpo", "none", tmp_path)
    prompt, comp, mask, _ = _batch()
    ids = torch.cat([prompt, comp], 1)
    with torch.no_grad():
        ref, _, _ = tr._get_per_token_logps_and_entropies(model, ids, torch.ones_like(ids), comp.shape[1])
        ours = completion_logps(lambda x: model(input_ids=x).logits, prompt, comp)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_length_weighting_closed_form():
    """d loss / d logp_t for a one-completion batch with ratio 1: -A / |o| (grpo) vs -A / max_len (dr_grpo)."""
    for length in (2, 5, 8):
        mask = (torch.arange(8) < length)[None]
        logp = torch.zeros(1, 8, requires_grad=True)
        adv = torch.tensor([-1.0])
        for kind, w in (("grpo", 1 / length), ("dr_grpo", 1 / 8)):
            g, = torch.autograd.grad(policy_loss(logp, logp.detach(), mask, adv, kind, max_len=8), logp)
            assert torch.allclose(g[0, :length], torch.full((length,), w)) and (g[0, length:] == 0).all()


def test_task_rewards_and_sampling_mask():
    task = Arithmetic(max_operand=50, max_fill=3)
    F, E, P = task.FILL, task.EOS, task.PAD
    d = task.digits
    comp = torch.tensor([[F, F] + d(42) + [E] + [P] * (task.max_new - 5),
                         d(42) + [E] + [P] * (task.max_new - 3),
                         d(41) + [E] + [P] * (task.max_new - 3),
                         [F] + d(42) + [F, E] + [P] * (task.max_new - 5),
                         [F] * task.max_new])
    mask = torch.tensor([[t != P for t in row] for row in comp.tolist()])
    r = task.rewards(comp, mask, torch.tensor([40] * 5), torch.tensor([2] * 5))
    assert r.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    after = Arithmetic(max_operand=50, max_fill=3, fill="after")
    comp2 = torch.tensor([d(42) + [F, F, E] + [P] * (task.max_new - 5),
                          d(42) + [E] + [P] * (task.max_new - 3),
                          [F] + d(42) + [E] + [P] * (task.max_new - 4),
                          d(24) + [F, E] + [P] * (task.max_new - 4)])
    mask2 = torch.tensor([[t != P for t in row] for row in comp2.tolist()])
    assert after.rewards(comp2, mask2, torch.tensor([40] * 4), torch.tensor([2] * 4)).tolist() == [1.0, 1.0, 0.0, 0.0]
    p, comp3, m3 = after.pretraining_batch(16, torch.Generator().manual_seed(1))
    _, a3, b3 = after.prompts(16, torch.Generator().manual_seed(1))
    assert after.rewards(comp3, m3, a3, b3).tolist() == [1.0] * 16  # the pretraining data is all correct
    g = torch.Generator().manual_seed(0)
    logits = torch.zeros(1, 1, task.VOCAB)
    logits[..., E] = 5.0  # EOS likely: completions end early
    c, m = sample(lambda ids: logits.expand(len(ids), ids.shape[1], -1), torch.zeros(64, 3, dtype=torch.long),
                  task.max_new, E, P, g)
    for row, mrow in zip(c.tolist(), m.tolist()):
        k = row.index(E) if E in row else len(row) - 1
        assert mrow == [i <= k for i in range(len(row))] and all(t == P for t in row[k + 1:])
