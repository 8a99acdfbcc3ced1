"""adafisher_2024: AdaFisher against its equations written out here (the authors' optimizers/AdaFisher.py
was read for them; it is not vendored): the factor diagonals from explicit per-sample quantities
(a convolution's patches by loops over output positions), the min-max normalization, the running
update from ones, F = S H^T + damping, the bias-corrected momentum step, every `refresh_every` steps;
the fixed point of the running factors (why F stays within 8% of the damping at the defaults);
layers without hooks move as momentum SGD; checkpoints resume exactly; bad input."""
import math

import pytest
import torch
from torch import nn

from optrepro.papers.adafisher_2024.method import AdaFisher, activation_diag, minmax, output_grad_diag

pytestmark = pytest.mark.reference


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3, bias=False)).double()


def _batch(t, n=16):
    g = torch.Generator().manual_seed(100 + t)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _mm(x):
    return (x - x.min()) / (x.max() - x.min() + 1e-6)


def test_steps_equal_the_equations_written_out():
    model, ref = _mlp(), _mlp()
    lr, beta, lam, gamma, T, wd = 0.01, 0.9, 1e-3, 0.8, 2, 1e-2
    opt = AdaFisher(model, lr=lr, beta=beta, damping=lam, gamma=gamma, refresh_every=T, weight_decay=wd)
    W1, b1, W2 = (p.detach().clone() for p in ref.parameters())
    H1 = S1 = H2 = S2 = None
    m = [torch.zeros_like(W1), torch.zeros_like(b1), torch.zeros_like(W2)]
    for t in range(5):
        x, y = _batch(t)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        # by hand: forward with the pre-activations kept, their gradients from autograd
        W1r, b1r, W2r = (w.clone().requires_grad_() for w in (W1, b1, W2))
        z1 = x @ W1r.T + b1r
        z1.retain_grad()
        a1 = torch.tanh(z1)
        z2 = a1 @ W2r.T
        z2.retain_grad()
        nn.functional.cross_entropy(z2, y).backward()
        if t % T == 0:
            Hn1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1).pow(2).mean(0)
            Sn1 = z1.grad.pow(2).mean(0)
            Hn2 = a1.detach().pow(2).mean(0)  # no bias: no column of ones
            Sn2 = z2.grad.pow(2).mean(0)
            upd = lambda old, new: (torch.ones_like(new) if old is None else old) * gamma / 10 + gamma / 100 * _mm(new)
            H1, S1, H2, S2 = upd(H1, Hn1), upd(S1, Sn1), upd(H2, Hn2), upd(S2, Sn2)
        F1 = S1[:, None] * H1[None, :] + lam
        F2 = S2[:, None] * H2[None, :] + lam
        Fs = [F1[:, :-1], F1[:, -1], F2]
        ws = [W1, b1, W2]
        grads = [W1r.grad, b1r.grad, W2r.grad]
        for i in range(3):
            g = grads[i] + wd * ws[i]
            m[i] = beta * m[i] + (1 - beta) * g
            ws[i] = ws[i] - lr / (1 - beta ** (t + 1)) * m[i] / Fs[i]
        W1, b1, W2 = ws
    for got, want in zip(model.parameters(), (W1, b1, W2)):
        assert torch.allclose(got.detach(), want, rtol=0, atol=1e-12)


def test_conv_factors_against_loops_over_output_positions():
    g = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(4, 6, kernel_size=(3, 2), stride=2, padding=1, groups=2).double()
    x = torch.randn(3, 4, 7, 6, generator=g, dtype=torch.float64)
    out = conv(x)
    xp = nn.functional.pad(x, (1, 1, 1, 1))
    rows = []
    for b in range(3):
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                for grp in range(2):  # each group's patch is a row, as the kernel of one group sees it
                    patch = xp[b, 2 * grp:2 * grp + 2, 2 * i:2 * i + 3, 2 * j:2 * j + 2]
                    rows.append(torch.cat([patch.reshape(-1), torch.ones(1, dtype=x.dtype)]))
    want = torch.stack(rows).pow(2).mean(0)
    assert torch.allclose(activation_diag(x, conv), want)
    # the patch order matches the kernel's: conv output = patches @ weight (one group)
    s = torch.randn_like(out)
    want_s = s.permute(0, 2, 3, 1).reshape(-1, 6).pow(2).mean(0)
    assert torch.allclose(output_grad_diag(s, conv), want_s)
    single = nn.Conv2d(2, 3, 3, padding=1, bias=False).double()
    from optrepro.papers.adafisher_2024.method import conv_patches
    y = single(x[:, :2])
    P = conv_patches(x[:, :2], single)
    assert torch.allclose(P @ single.weight.reshape(3, -1).T, y.permute(0, 2, 3, 1).reshape(-1, 3))


def test_running_factors_converge_to_a_small_multiple_of_the_estimate():
    # H <- (g/10) H + (g/100) h has the fixed point (g/100) / (1 - g/10) h: 0.0087 h for g = 0.8, so after
    # a few refreshes F = S H^T + damping lies in [damping, damping + 0.0087^2]: within 8% of damping = 1e-3
    model = _mlp()
    opt = AdaFisher(model, lr=0.0, gamma=0.8, refresh_every=1)
    x, y = _batch(0)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    c = 0.008 / (1 - 0.08)
    want = c * minmax(torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1).pow(2).mean(0))
    assert torch.allclose(opt.H[0], want, rtol=1e-12, atol=1e-15)
    F = opt.fisher_diag(model[0].weight)
    assert float(F.min()) >= 1e-3 and float(F.max()) <= 1e-3 + c * c + 1e-12
    assert float(F.max()) / float(F.min()) < 1.08


def test_layers_without_hooks_move_as_momentum_sgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)).double()
    opt = AdaFisher(model, lr=1e-4, beta=0.9)  # small: the hooked head moves at lr / damping
    w0 = model[0].weight.detach().clone()
    x = torch.randn(4, 1, 6, dtype=torch.float64)
    m = torch.zeros_like(w0)
    w = w0.clone()
    for t in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        g = model[0].weight.grad.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        w = w - 1e-4 / (1 - 0.9 ** (t + 1)) * m
    assert opt.fisher_diag(model[0].weight) is None
    assert torch.allclose(model[0].weight.detach(), w, rtol=1e-12, atol=0)


def test_a_checkpoint_resumes_exactly():
    def train(model, opt, ts):
        for t in ts:
            x, y = _batch(t)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    a = _mlp()
    oa = AdaFisher(a, lr=0.01, refresh_every=2)
    train(a, oa, range(6))
    b = _mlp()
    ob = AdaFisher(b, lr=0.01, refresh_every=2)
    train(b, ob, range(3))
    sd_model, sd_opt = b.state_dict(), ob.state_dict()
    c = _mlp()
    c.load_state_dict(sd_model)
    oc = AdaFisher(c, lr=0.01, refresh_every=2)
    oc.load_state_dict(sd_opt)
    train(c, oc, range(3, 6))
    for p, q in zip(a.parameters(), c.parameters()):
        assert torch.equal(p, q)


def test_minmax_reads_infinities_as_the_authors_do():
    x = torch.tensor([0.5, math.inf, -math.inf, 0.25])
    assert torch.allclose(minmax(x), torch.tensor([0.5, 1.0, 0.0, 0.25]) / (1 + 1e-6))


@pytest.mark.parametrize("kw,match", [({"beta": 1.0}, "beta"), ({"gamma": -0.1}, "gamma"), ({"damping": 0.0}, "damping"),
                                      ({"refresh_every": 0}, "refresh_every"), ({"lr": float("nan")}, "lr")])
def test_bad_arguments_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        AdaFisher(_mlp(), **kw)


def test_parameters_instead_of_the_model_are_a_clear_error():
    with pytest.raises(ValueError, match="needs the model"):
        AdaFisher(list(_mlp().parameters()))


def test_gamma_zero_leaves_the_damping_alone():
    # the ablation rows: gamma = 0 zeroes the running factors at the first refresh, F = damping from step 1
    model = _mlp()
    opt = AdaFisher(model, lr=1e-3, gamma=0.0, damping=1e-3)
    x, y = _batch(0)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert torch.equal(opt.fisher_diag(model[0].weight), torch.full((7, 5), 1e-3, dtype=torch.float64))
