"""common.zo against closed forms: smoothed gradients of a quartic, exact finite differences,
autograd for forward gradients, and bit-for-bit checks of the seeded perturbation."""
import math

import pytest
import torch
from torch import nn

from optrepro.errors import ConfigError
from optrepro.zo import ParamSpace, ZOOptimizer, add_, cge, forward_grad, magnitude_masks, perturbed, random_masks, rge
from optrepro.zo.estimators import selected_coords
from optrepro.zo.memory import peak_tensor_bytes


class Quartic(nn.Module):
    """f(x) = Σ x_i^4 / 4 + b·x: ∇f = x^3 + b; Gaussian smoothing E f(x + μu) has ∇ = x^3 + 3μ^2 x + b."""

    def __init__(self, x):
        super().__init__()
        self.lin = nn.Linear(1, x.numel(), bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(x.reshape(-1, 1))
        self.b = torch.linspace(-1, 1, x.numel(), dtype=x.dtype)

    def forward(self):
        x = self.lin(torch.ones(1, dtype=self.b.dtype))  # = the weight column, through the module's forward
        return (x ** 4).sum() / 4 + (self.b * x).sum()


def _mean_and_se(samples):
    s = torch.stack(samples)
    return s.mean(0), s.std(0) / math.sqrt(len(samples))


@pytest.mark.parametrize("dist,two_sided", [("gaussian", True), ("gaussian", False), ("sphere", True)])
def test_rge_is_unbiased_for_the_smoothed_gradient(dist, two_sided):
    torch.manual_seed(0)
    x = torch.tensor([0.9, -0.6, 0.4, 1.1, -1.0], dtype=torch.float64)
    f = Quartic(x).double()
    d, mu = x.numel(), 0.3
    sp = ParamSpace(f.parameters(), dist=dist)
    samples = [rge(f, f, sp, [s], mu, two_sided).dense(sp)[0].reshape(-1) for s in range(20000)]
    mean, se = _mean_and_se(samples)
    var = 3 * mu ** 2 if dist == "gaussian" else 3 * (mu * math.sqrt(d)) ** 2 / (d + 2)  # ball of radius mu sqrt(d)
    smoothed = x ** 3 + var * x + f.b
    assert ((mean - smoothed).abs() < 4 * se).all(), (mean, smoothed, se)
    # the test can tell the smoothed from the plain gradient: the smoothing term exceeds the tolerance
    assert ((var * x).abs() > 4 * se).any()


def test_multi_query_average_cuts_the_variance_by_q():
    x = torch.tensor([0.5, -0.2, 0.8, 0.1], dtype=torch.float64)
    f = Quartic(x).double()
    sp = ParamSpace(f.parameters())
    one = torch.stack([rge(f, f, sp, [s], 1e-3).dense(sp)[0].reshape(-1) for s in range(4000)])
    four = torch.stack([rge(f, f, sp, [4 * s + j + 10**6 for j in range(4)], 1e-3).dense(sp)[0].reshape(-1)
                        for s in range(1000)])
    ratio = float(one.var(0).sum() / four.var(0).sum())
    assert 3.2 < ratio < 4.8


def test_two_sided_difference_is_the_directional_derivative_on_a_quadratic():
    torch.manual_seed(1)
    m = nn.Linear(6, 1).double()
    A = torch.randn(6, 6, dtype=torch.float64)
    A = A @ A.T
    X = torch.randn(6, dtype=torch.float64)

    def loss():
        w = m.weight.reshape(-1)
        return 0.5 * w @ A @ w + X @ w + m.bias.sum() ** 2

    sp = ParamSpace(m.parameters())
    with pytest.raises(ConfigError, match="never used inside their own module"):  # the loss reads m.weight directly
        rge(loss, m, sp, [7], 0.5)
    before = [p.detach().clone() for p in m.parameters()]
    est = rge(loss, m, sp, [7], 0.5, inplace=True)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-15) for a, b in zip(before, m.parameters()))
    m.zero_grad()
    loss().backward()
    z = sp.dense(7)
    exact = sum(float((p.grad * zi).sum()) for p, zi in zip(sp.params, z))
    assert est.coefs[0] == pytest.approx(exact, rel=1e-10)


def test_perturbed_forward_equals_an_explicit_copy_and_leaves_theta_bit_for_bit():
    torch.manual_seed(0)
    from optrepro.models import tiny_gpt
    model = tiny_gpt(50, 16, d_model=32, n_layer=2, n_head=2)  # tied embeddings: one Parameter, two modules
    ids = torch.randint(0, 50, (3, 16))
    before = [p.detach().clone() for p in model.parameters()]
    sp = ParamSpace(model.parameters())
    with perturbed(model, sp, 123, 1e-2):
        out = model(ids)
    copy = tiny_gpt(50, 16, d_model=32, n_layer=2, n_head=2)
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        for i, p in enumerate(copy.parameters()):
            p.add_(1e-2 * sp.z(i, 123))
        ref = copy(ids)
    assert torch.equal(out, ref)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_same_seed_regenerates_the_same_direction_and_inplace_roundtrip_drift_is_measured():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8))
    sp = ParamSpace(m.parameters())
    assert all(torch.equal(a, b) for a, b in zip(sp.dense(5), sp.dense(5)))
    assert not torch.equal(sp.dense(5)[0], sp.dense(6)[0])
    before = [p.detach().clone() for p in m.parameters()]
    # MeZO's literal in-place sequence +eps z, -2 eps z, +eps z
    add_(sp, 5, 1e-3)
    add_(sp, 5, -2e-3)
    add_(sp, 5, 1e-3)
    diffs = torch.cat([(p.detach() - b).abs().reshape(-1) for p, b in zip(m.parameters(), before)])
    changed = float((diffs > 0).float().mean())
    # in float32 some entries do not come back exactly (rounding); they move by about an ulp of 1e-3 z
    assert diffs.max() < 1e-8 * 1e3
    assert changed < 0.5


def test_zo_sgd_step_moves_theta_by_exactly_minus_lr_times_the_estimate():
    torch.manual_seed(0)
    m = nn.Linear(5, 3)
    x, y = torch.randn(16, 5), torch.randn(16, 3)
    def closure():
        return ((m(x) - y) ** 2).mean()
    opt = ZOOptimizer(m, lr=0.1, eps=1e-3, seed=3)
    before = [p.detach().clone() for p in m.parameters()]
    opt.step(closure)
    seed = 3 * 1_000_000 + 1  # step t = 1, query 0
    # recompute the projected gradient at θ with the same seed on a copy
    m2 = nn.Linear(5, 3)
    with torch.no_grad():
        for p, b in zip(m2.parameters(), before):
            p.copy_(b)
    sp2 = ParamSpace(m2.parameters())
    est = rge(lambda: ((m2(x) - y) ** 2).mean(), m2, sp2, [seed], 1e-3)
    for i, (p, b) in enumerate(zip(m.parameters(), before)):
        assert torch.allclose(p.detach(), b - 0.1 * est.coefs[0] * sp2.z(i, seed), atol=1e-7)


def test_cge_equals_finite_differences_and_the_gradient_plus_half_mu_diagonal_on_a_quadratic():
    torch.manual_seed(0)
    d = 12
    A = torch.randn(d, d, dtype=torch.float64)
    A = A @ A.T
    b = torch.randn(d, dtype=torch.float64)
    theta = torch.randn(d, dtype=torch.float64)
    f = lambda th: 0.5 * ((th @ A) * th).sum(-1) + th @ b  # batched over rows
    coords = torch.tensor([0, 3, 4, 11])
    g, f0, queries = cge(f, theta, coords, 1e-2, batch=3)
    loop = torch.zeros(d, dtype=torch.float64)
    for i in coords.tolist():
        e = torch.zeros(d, dtype=torch.float64)
        e[i] = 1e-2
        loop[i] = (f(theta + e) - f(theta)) / 1e-2
    assert torch.allclose(g, loop, rtol=0, atol=1e-12)
    exact = A @ theta + b + 0.5 * 1e-2 * torch.diagonal(A)
    assert torch.allclose(g[coords], exact[coords], atol=1e-9)
    assert (g[[1, 2, 5]] == 0).all() and queries == 5


def test_forward_grad_equals_directional_derivative_times_direction():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    sp = ParamSpace(m.parameters())
    names = [n for n, _ in m.named_parameters()]

    def loss_of(params):
        return torch.func.functional_call(m, dict(zip(names, params)), (x,)).square().mean()

    est = forward_grad(loss_of, sp, 9)
    m.zero_grad()
    m(x).square().mean().backward()
    exact = sum(float((p.grad * z).sum()) for p, z in zip(sp.params, sp.dense(9)))
    assert est.coefs[0] == pytest.approx(exact, rel=1e-10)


def test_masks_restrict_the_direction_and_magnitude_masks_follow_the_weights():
    torch.manual_seed(0)
    m = nn.Linear(20, 10)
    masks = magnitude_masks(list(m.parameters()), 0.25)
    assert masks[1] is None and isinstance(masks[0], float)
    sp = ParamSpace(m.parameters(), masks)
    z = sp.z(0, 1)
    small = m.weight.detach().abs() <= masks[0]
    assert ((z != 0) == small).all() and int(small.sum()) == 50
    assert sp.selected() == 50 + 10
    rm = random_masks(list(m.parameters()), 0.1, seed=0)
    assert int(rm[0].sum()) == 20
    assert int((ParamSpace(m.parameters(), rm).z(0, 3) != 0).sum()) == 20
    coords = selected_coords(ParamSpace(m.parameters(), rm))
    assert coords.numel() == 30 and sp.numel() == 210


def test_bad_input_is_refused_before_any_step():
    m = nn.Linear(3, 2)
    before = [p.detach().clone() for p in m.parameters()]
    for eps in (0, -1e-3, float("nan")):
        with pytest.raises(ConfigError, match="eps"):
            ZOOptimizer(m, lr=0.1, eps=eps)
    with pytest.raises(ConfigError, match="selects no parameter"):
        ParamSpace(m.parameters(), [torch.zeros(2, 3, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)])
    for inplace in (False, True):
        opt = ZOOptimizer(m, lr=0.1, eps=1e-3, inplace=inplace)
        with pytest.raises(ConfigError, match="scalar"):
            opt.step(lambda: m(torch.ones(4, 3)).sum(0))
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    with pytest.raises(ConfigError, match="density"):
        magnitude_masks(list(m.parameters()), 0.0)


@pytest.mark.parametrize("method", ["zo_sgd", "zo_sign", "zo_mmt", "zo_cons", "zo_adam", "forward_grad"])
def test_every_method_decreases_a_least_squares_loss(method):
    torch.manual_seed(0)
    m = nn.Linear(8, 1)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.3
    names = [n for n, _ in m.named_parameters()]
    closure = lambda: ((m(x) - y) ** 2).mean()
    loss_fn = lambda ps: ((torch.func.functional_call(m, dict(zip(names, ps)), (x,)) - y) ** 2).mean()
    lr = {"zo_sign": 5e-3, "zo_adam": 2e-2}.get(method, 1e-2)
    opt = ZOOptimizer(m, lr=lr, method=method, eps=1e-3, seed=1, momentum=0.5)
    start = float(closure())
    for _ in range(300):
        opt.step(closure, loss_fn=loss_fn)
    assert float(closure()) < 0.5 * start


def test_peak_tensor_memory_counts_adam_state_and_not_inference():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 512))
    x = torch.randn(8, 512)
    params = list(m.parameters())
    pbytes = sum(p.numel() * 4 for p in params)

    def infer():
        with torch.no_grad():
            m(x)

    opt = torch.optim.Adam(params)

    def adam_step():
        m(x).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    inf = peak_tensor_bytes(infer, [params, x])
    fo = peak_tensor_bytes(adam_step, [params, x])
    # inference: parameters + batch + two activations of 8 x 512
    assert pbytes <= inf < pbytes + 64 * 1024
    # Adam: at least parameters + gradients + two moments
    assert fo >= 4 * pbytes


def test_deepzero_layerwise_cge_with_feature_reuse_equals_the_generic_cge():
    from optrepro.papers.deepzero_2023.method import cge_layerwise, init_mlp, loss_of, random_coords
    torch.manual_seed(0)
    params = init_mlp([6, 5, 4, 3], seed=0)
    x, y = torch.randn(7, 6), torch.randint(0, 3, (7,))
    coords = random_coords(params, [0.5, 0.5, 0.5], torch.Generator().manual_seed(0))
    g_reuse, f0, q, macs_reuse = cge_layerwise(params, x, y, coords, 1e-3, reuse=True, chunk=4)
    g_plain, f0b, qb, macs_plain = cge_layerwise(params, x, y, coords, 1e-3, reuse=False)
    # the generic CGE on the flat parameter vector (common.zo.cge), batched with vmap
    shapes = [(W.shape, b.shape) for W, b in params]
    theta = torch.cat([torch.cat([W.reshape(-1), b]) for W, b in params])

    def unflat(th):
        out, o = [], 0
        for ws, bs in shapes:
            nw, nb = ws.numel(), bs.numel()
            out.append((th[o:o + nw].reshape(ws), th[o + nw:o + nw + nb]))
            o += nw + nb
        return out

    offsets = torch.cumsum(torch.tensor([0] + [W.numel() + b.numel() for W, b in params[:-1]]), 0)
    flat_coords = torch.cat([c + o for c, o in zip(coords, offsets)])
    g_ref, f0c, qc = cge(torch.func.vmap(lambda th: loss_of(unflat(th), x, y)), theta, flat_coords, 1e-3)
    flat = lambda g: torch.cat([torch.cat([gw.reshape(-1), gb]) for gw, gb in g])
    assert torch.allclose(flat(g_reuse), g_ref, atol=1e-4) and torch.allclose(flat(g_plain), g_ref, atol=1e-4)
    assert torch.allclose(flat(g_reuse), flat(g_plain), atol=1e-6)
    assert q == qb == qc and macs_reuse < macs_plain


def test_next_keyword_examples_are_the_bytes_before_each_statement_keyword():
    from optrepro.zo.prompt import KEYWORDS, _keyword_examples
    text = b"class A:\n    def f(self):\n        if x:\n            return 1\n        self.y = 2\n        returned = 3\n"
    ex = _keyword_examples(text, 8)
    # 'def ', 'if ', 'return ', 'self.' start statements; 'returned' does not
    assert [KEYWORDS[c] for _, c in ex] == ["def", "if", "return", "self"]
    assert ex[0][0] == b"ss A:\n    " [-8:] and all(len(p) == 8 for p, _ in ex)
    assert ex[2][0] == b"        "[-8:] and ex[2][0].endswith(b" ")


def test_prompt_task_is_balanced_and_no_test_or_dev_prompt_is_a_training_prompt():
    from optrepro.zo.prompt import TaskSpec, prompt_data
    d = prompt_data(TaskSpec(train_per_class=20, dev_per_class=5, test_per_class=20), seed=0)
    assert torch.bincount(d.y_train).tolist() == [20] * 4 and torch.bincount(d.y_test).tolist() == [20] * 4
    assert d.verbalizer.tolist() == [ord(c) for c in "risd"] and d.x_train.shape[1] == 48
    train = {bytes(r.tolist()) for r in d.x_train}
    assert not train & {bytes(r.tolist()) for r in d.x_test} and not train & {bytes(r.tolist()) for r in d.x_dev}


def test_deepzero_rge_is_unbiased_on_a_linear_loss_direction():
    """For L = cross-entropy the one-sided estimate is biased by O(μ); with μ tiny its mean over many
    queries must match the autograd gradient within the sampling error (the d_t scaling is what makes
    the per-tensor sphere directions unbiased)."""
    from optrepro.papers.deepzero_2023.method import init_mlp, loss_of, rge_mlp
    params = [tuple(t.double() for t in pair) for pair in init_mlp([5, 4, 3], seed=0)]
    x, y = torch.randn(9, 5, dtype=torch.float64), torch.randint(0, 3, (9,))
    leaves = [(W.clone().requires_grad_(), b.clone().requires_grad_()) for W, b in params]
    exact = torch.autograd.grad(loss_of(leaves, x, y), [t for p in leaves for t in p])
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(300):
        g, _, _ = rge_mlp(params, x, y, 20, 1e-6, gen)
        samples.append(torch.cat([t.reshape(-1) for p in g for t in p]))
    mean, se = _mean_and_se(samples)
    ref = torch.cat([t.reshape(-1) for t in exact])
    assert ((mean - ref).abs() < 4 * se + 1e-6).all()


def test_zo_bench_measures_mezo_at_inference_memory_and_adam_above_it():
    from optrepro.zo import bench
    spec = {"d_model": 32, "n_layer": 2, "n_head": 2, "context": 16, "batch": 2}
    rows = bench.run(modes=("inference", "zo_sgd", "fo_adam"), spec=spec, reps=1, rss=False)
    by = {r["mode"]: r for r in rows}
    assert by["zo_sgd"]["peak_mb"] <= 1.1 * by["inference"]["peak_mb"]
    assert by["fo_adam"]["peak_mb"] >= 3 * by["inference"]["peak_mb"]  # params + grads + two moments at least
    md = bench.markdown(rows, spec, "test machine", "cpu")
    assert "MeZO peak <= 1.1x inference | yes" in md and "| fo_adam |" in md
