"""Step-by-step equality with the authors' packages: adabelief-pytorch 0.2.1, lion-pytorch 0.2.5.

Every parameter, after every one of 120 steps, on several shapes, with and without weight decay.
Defaults are mapped explicitly: adabelief-pytorch defaults to eps=1e-16, weight_decouple=True,
rectify=True; ours to the paper's Algorithm 2 (L2 decay, no rectification), so each case names
both sides' settings."""
import pytest
import torch

from optrepro.papers.adabelief_2020.method import AdaBelief, adabelief_update
from optrepro.papers.lion_2023.method import Lion, lion_update
from tests.reference.lockstep import lockstep as _lockstep

pytestmark = pytest.mark.reference


ADABELIEF_CASES = [
    # (ours kwargs, adabelief-pytorch kwargs)
    (dict(eps=1e-16), dict(eps=1e-16, weight_decouple=False, rectify=False)),
    (dict(eps=1e-8, weight_decay=5e-4), dict(eps=1e-8, weight_decay=5e-4, weight_decouple=False, rectify=False)),
    (dict(eps=1e-8, weight_decay=1e-2, decoupled=True),
     dict(eps=1e-8, weight_decay=1e-2, weight_decouple=True, rectify=False)),
    (dict(eps=1e-16, weight_decay=1e-2, decoupled=True, rectify=True),  # the package's defaults
     dict(eps=1e-16, weight_decay=1e-2)),
    (dict(eps=1e-8, weight_decay=1e-2, decoupled=True, rectify=True),  # the package's default mode at eps 1e-8
     dict(eps=1e-8, weight_decay=1e-2)),
    (dict(lr=3e-2, betas=(0.5, 0.9), eps=1e-12, rectify=True),
     dict(lr=3e-2, betas=(0.5, 0.9), eps=1e-12, weight_decouple=False, rectify=True)),
]


@pytest.mark.parametrize("ours,ref", ADABELIEF_CASES, ids=[str(i) for i in range(len(ADABELIEF_CASES))])
def test_adabelief_matches_official_package(ours, ref):
    from adabelief_pytorch import AdaBelief as Ref
    lr = ours.pop("lr", 1e-2)
    ref.pop("lr", None)
    _lockstep(lambda p: AdaBelief(p, lr=lr, **ours), lambda p: Ref(p, lr=lr, print_change_log=False, **ref))


def test_adabelief_float32_close_to_package():
    from adabelief_pytorch import AdaBelief as Ref
    _lockstep(lambda p: AdaBelief(p, lr=1e-3, eps=1e-8, weight_decay=5e-4),
              lambda p: Ref(p, lr=1e-3, eps=1e-8, weight_decay=5e-4, weight_decouple=False, rectify=False,
                            print_change_log=False), dtype=torch.float32, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("wd", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("betas", [(0.9, 0.99), (0.95, 0.98)])
def test_lion_matches_official_package(wd, betas):
    from lion_pytorch import Lion as Ref
    _lockstep(lambda p: Lion(p, lr=1e-3, betas=betas, weight_decay=wd),
              lambda p: Ref(p, lr=1e-3, betas=betas, weight_decay=wd))


def test_lion_literal_equations():
    """Program 1 of the paper, by hand, on one step from a non-zero momentum."""
    p, g, m = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.3, 0.0, -1.0]), torch.tensor([-1.0, 0.0, 0.2])
    lr, b1, b2, wd = 0.1, 0.9, 0.99, 0.5
    c = b1 * m + (1 - b1) * g
    want_p = p - lr * (torch.sign(c) + wd * p)
    want_m = b2 * m + (1 - b2) * g
    lion_update.eager(p, g, m, lr, b1, b2, wd)
    torch.testing.assert_close(p, want_p)
    torch.testing.assert_close(m, want_m)
    assert p[1] == -2.0 * (1 - lr * wd)  # sign(0) = 0: only weight decay moves it


def test_fused_equals_eager(monkeypatch):
    """The torch.compile path and the eager path give the same step (float32, tight tolerance)."""
    monkeypatch.setenv("REPRO_COMPILE", "1")
    torch.manual_seed(0)
    for shape in [(64,), (8, 16)]:
        p, g, m, s = (torch.randn(shape) for _ in range(4))
        s = s.abs()
        args = (1e-3, 0.9, 0.999, 1e-8, 5e-4, 0.1, 0.01, False)
        pe, me, se = p.clone(), m.clone(), s.clone()
        adabelief_update(p, g, m, s, *args)
        adabelief_update.eager(pe, g, me, se, *args)
        for a, b in ((p, pe), (m, me), (s, se)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        q, mq = torch.randn(shape), torch.randn(shape)
        qe, mqe = q.clone(), mq.clone()
        lion_update(q, g, mq, 1e-3, 0.9, 0.99, 0.1)
        lion_update.eager(qe, g, mqe, 1e-3, 0.9, 0.99, 0.1)
        torch.testing.assert_close(q, qe, atol=1e-6, rtol=1e-5)
