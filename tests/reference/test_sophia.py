"""sophia_2023: Sophia-G against the authors' package (sophia-opt 0.2.2 SophiaG) given the same
gradients and curvature samples; the Gauss-Newton-Bartlett estimate's expectation (every label
combination enumerated) against the exact Gauss-Newton diagonal from common.curvature.ggn_vp; the
trainer's refresh schedule; bad input."""
import itertools

import pytest
import torch
from sophia_opt import SophiaG as RefSophiaG

from optrepro.curvature import ggn_vp
from optrepro.papers.sophia_2023.method import SophiaG
from tests.conftest import StubCtx
from optrepro.curvature import sampled_label_loss

pytestmark = pytest.mark.reference


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 4)).double()


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_steps_equal_the_authors_package(wd):
    ours_m, ref_m = _model(), _model()
    B, k = 16, 3
    ours = SophiaG(ours_m.parameters(), lr=0.02, rho=0.05, weight_decay=wd, bs=B, hessian_every=k)
    ref = RefSophiaG(ref_m.parameters(), lr=0.02, rho=0.05, weight_decay=wd)
    g = torch.Generator().manual_seed(5)
    for t in range(10):
        x, y = torch.randn(B, 5, generator=g, dtype=torch.float64), torch.randint(0, 4, (B,), generator=g)
        for m, opt in ((ours_m, ours), (ref_m, ref)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
        ours.step()
        ref.step(bs=B)
        if t % k == k - 1:
            ys = torch.randint(0, 4, (B,), generator=g)  # the same "sampled" labels for both
            for m, opt in ((ours_m, ours), (ref_m, ref)):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(m(x), ys).backward()
                opt.update_hessian()
        for a, b in zip(ours_m.parameters(), ref_m.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_gnb_expectation_is_the_gauss_newton_diagonal():
    """E_y[B ĝ(y) ⊙ ĝ(y)] over y ~ softmax, every label combination of B = 2 examples and C = 3 classes
    summed exactly, equals diag(G) with G = J' H_L J of the mean cross-entropy."""
    torch.manual_seed(1)
    B, C, d = 2, 3, 4
    X = torch.randn(B, d, dtype=torch.float64)
    w0 = torch.randn(C * d, dtype=torch.float64)

    def logits(w):
        return X @ w.view(C, d).T

    p = torch.softmax(logits(w0), -1)
    expect = torch.zeros_like(w0)
    for ys in itertools.product(range(C), repeat=B):
        w = w0.clone().requires_grad_(True)
        (gh,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits(w), torch.tensor(ys)), [w])
        prob = float(torch.prod(torch.stack([p[i, ys[i]] for i in range(B)])))
        expect += prob * B * gh * gh
    any_labels = torch.zeros(B, dtype=torch.long)  # the Gauss-Newton matrix does not depend on the labels
    G_diag = torch.stack([ggn_vp(lambda w: logits(w).flatten(),
                                 lambda out: torch.nn.functional.cross_entropy(out.view(B, C), any_labels),
                                 w0, e)[j] for j, e in enumerate(torch.eye(C * d, dtype=torch.float64))])
    torch.testing.assert_close(expect, G_diag, rtol=1e-12, atol=1e-14)


def test_sampled_labels_follow_the_model():
    model = torch.nn.Linear(3, 5).double()
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0, 0.0]))  # softmax puts all its mass on class 2
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    loss = sampled_label_loss(lambda t: model(t), x, torch.Generator().manual_seed(0))
    assert float(loss) < 1e-15  # every sampled label is class 2


def test_trainer_refreshes_every_k_steps_and_refuses_tasks_without_samples():
    from optrepro.errors import ConfigError
    from optrepro.papers.sophia_2023 import experiment as ex
    from optrepro.tasks import classify

    calls = []

    class Counting(SophiaG):
        def update_hessian(self):
            calls.append(1)
            super().update_hessian()

    cfg = ex.Config(max_chars=20000, d_model=16, n_layer=1, n_head=2, context=16)
    cfg.train.steps, cfg.train.batch_size, cfg.eval_batches = 25, 4, 2
    cfg.optim.name = "sophiag"

    from optrepro.tasks import charlm
    out = charlm.run(cfg, StubCtx(), make_optimizer=lambda ps, bs: Counting(ps, lr=1e-3, bs=bs, hessian_every=10))
    assert len(calls) == 2 and out["val_loss"] > 0  # after steps 10 and 20
    ccfg = classify.ClassifyConfig(dataset="digits", model="mlp")
    ccfg.train.steps = 2
    with pytest.raises(ConfigError, match="curvature_loss"):
        classify.run(ccfg, StubCtx(), make_optimizer=lambda ps, model=None: SophiaG(ps))


@pytest.mark.parametrize("kw,match", [(dict(lr=-1.0), "lr"), (dict(rho=-1.0), "rho"), (dict(bs=0), "bs"),
                                      (dict(hessian_every=0), "hessian_every"), (dict(betas=(0.9, 1.0)), "beta")])
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        SophiaG([torch.zeros(2, requires_grad=True)], **kw)
