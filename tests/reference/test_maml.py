"""common.bilevel.meta (maml_2017): MAML meta-gradients against torchopt 0.7.3's MetaSGD (differentiable
inner SGD on an nn.Module, task by task), one and two inner steps, and against the closed form for
linear regression; first-order MAML against the query gradient at the adapted parameters; the batched
per-task copies against a loop over tasks; the sinusoid tasks' definition."""
import pytest
import torch
import torchopt
from torch import nn

from optrepro.bilevel import meta

pytestmark = pytest.mark.reference


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()


def _tasks(T=4, K=5):
    g = torch.Generator().manual_seed(1)
    s, q, _ = meta.sinusoid_tasks(T, K, g, query=7)
    return tuple(t.double() for t in s), tuple(t.double() for t in q)


@pytest.mark.parametrize("steps", [1, 2])
def test_meta_gradient_equals_torchopt_metasgd(steps):
    support, query = _tasks()
    ours = _net()
    meta.meta_loss(ours, meta.mse_per_task, support, query, steps, lr=0.05).backward()

    ref = _net()
    inner = torchopt.MetaSGD(ref, lr=0.05)
    T = len(support[0])
    for t in range(T):
        snap = torchopt.extract_state_dict(ref)
        for _ in range(steps):
            inner.step(((ref(support[0][t]) - support[1][t]) ** 2).mean())
        (((ref(query[0][t]) - query[1][t]) ** 2).mean() / T).backward()
        torchopt.recover_state_dict(ref, snap)
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-13)


def test_meta_gradient_equals_the_closed_form_for_linear_regression():
    # L_s(w) = |X_s w - y_s|^2 / n: w' = w - a (H_s w - b_s), H_s = 2 X_s'X_s / n, b_s = 2 X_s'y_s / n;
    # d L_q(w') / dw = (I - a H_s) grad L_q(w')
    g = torch.Generator().manual_seed(2)
    d, n, a = 3, 6, 0.1
    model = nn.Linear(d, 1, bias=False).double()
    Xs, Xq = torch.randn(1, n, d, generator=g, dtype=torch.float64), torch.randn(1, n, d, generator=g, dtype=torch.float64)
    ys, yq = torch.randn(1, n, 1, generator=g, dtype=torch.float64), torch.randn(1, n, 1, generator=g, dtype=torch.float64)
    meta.meta_loss(model, meta.mse_per_task, (Xs, ys), (Xq, yq), 1, lr=a).backward()
    w = model.weight.detach().reshape(d, 1)
    Hs, bs = 2 * Xs[0].T @ Xs[0] / n, 2 * Xs[0].T @ ys[0] / n
    w1 = w - a * (Hs @ w - bs)
    gq = 2 * Xq[0].T @ (Xq[0] @ w1 - yq[0]) / n
    want = (torch.eye(d, dtype=torch.float64) - a * Hs) @ gq
    assert torch.allclose(model.weight.grad.reshape(d, 1), want, rtol=1e-12)
    # first order: the query gradient at w'
    model.weight.grad = None
    meta.meta_loss(model, meta.mse_per_task, (Xs, ys), (Xq, yq), 1, lr=a, first_order=True).backward()
    assert torch.allclose(model.weight.grad.reshape(d, 1), gq, rtol=1e-12)


def test_batched_adaptation_equals_a_loop_over_tasks():
    support, query = _tasks(T=3)
    net = _net()
    adapted = meta.adapt(net, meta.per_task(net, 3), meta.mse_per_task, *support, steps=3, lr=0.1)
    for t in range(3):
        p = {k: v.detach().clone().requires_grad_() for k, v in net.named_parameters()}
        for _ in range(3):
            out = torch.func.functional_call(net, p, (support[0][t],))
            gr = torch.autograd.grad(((out - support[1][t]) ** 2).mean(), list(p.values()))
            p = {k: (v - 0.1 * g).detach().requires_grad_() for (k, v), g in zip(p.items(), gr)}
        for k in p:
            assert torch.allclose(adapted[k][t], p[k], rtol=1e-12, atol=1e-14)


def test_sinusoid_tasks_follow_their_definition():
    g = torch.Generator().manual_seed(3)
    (xs, ys), (xq, yq), (A, phi) = meta.sinusoid_tasks(50, 10, g, query=20)
    assert xs.shape == (50, 10, 1) and xq.shape == (50, 20, 1)
    assert bool((A >= 0.1).all() and (A <= 5).all() and (phi >= 0).all() and (phi <= torch.pi).all())
    assert bool((xs.abs() <= 5).all())
    assert torch.allclose(ys, A.view(-1, 1, 1) * torch.sin(xs - phi.view(-1, 1, 1)))


def test_fewshot_tasks_relabel_and_do_not_overlap():
    g = torch.Generator().manual_seed(4)
    x = torch.arange(300.).view(300, 1)
    y = torch.arange(300) % 6
    (xs, ys), (xq, yq) = meta.fewshot_tasks(x, y, [0, 2, 4, 5], n_way=3, shots=2, query=4, n_tasks=20, generator=g)
    assert xs.shape == (20, 6, 1) and yq.shape == (20, 12)
    for t in range(20):
        assert not set(xs[t].flatten().tolist()) & set(xq[t].flatten().tolist())  # support and query disjoint
        orig_s = y[xs[t].flatten().long()]
        orig_q = y[xq[t].flatten().long()]
        for label in range(3):  # each new label is one original class, the same in support and query
            assert len(set(orig_s[ys[t] == label].tolist())) == 1
            assert set(orig_q[yq[t] == label].tolist()) == set(orig_s[ys[t] == label].tolist())
        assert set(orig_s.tolist()) <= {0, 2, 4, 5}
    with pytest.raises(ValueError, match="need 3 classes"):
        meta.fewshot_tasks(x, y, [0, 1], n_way=3, shots=2, query=4, n_tasks=1, generator=g)


def test_adaptation_curve_matches_adapting_step_by_step():
    support, query = _tasks(T=3)
    net = _net()
    score = lambda out, y: meta.mse_per_task(out, y).mean()
    curve = meta.adaptation_curve(net, meta.mse_per_task, support, query, 0.05, [0, 1, 3], score)
    for s in (0, 1, 3):
        p = meta.adapt(net, {k: v.detach().requires_grad_() for k, v in meta.per_task(net, 3).items()},
                       meta.mse_per_task, *support, steps=s, lr=0.05, first_order=True)
        with torch.no_grad():
            want = float(score(meta.forward(net, p, query[0]), query[1]))
        assert curve[s] == pytest.approx(want, rel=1e-12)
    assert curve[3] < curve[0]
