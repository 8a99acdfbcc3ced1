"""Every step of every wave-1 optimizer against its reference: the authors' package where there is
one (adamp, adabound, schedulefree, dog-optimizer, grams-pytorch), the paper's equations written
out literally otherwise (diffGrad's reference.py, schedule-free's three-sequence form, the cautious
mask by hand), and pytorch-optimizer as a second opinion for diffGrad."""
import warnings

import pytest
import torch

from optrepro.papers.adabound_2019.method import AdaBound, AMSBound
from optrepro.papers.adamp_2021.method import SGDP, AdamP
from optrepro.papers.cautious_2024.method import CAdamW, CLion, cadamw_update, clion_update
from optrepro.papers.diffgrad_2019.method import DiffGrad
from optrepro.papers.diffgrad_2019.reference import DiffGradReference
from optrepro.papers.dog_2023.method import DoG, LDoG
from optrepro.papers.grams_2024.method import Grams
from optrepro.papers.schedulefree_2024.method import AdamWScheduleFree, SGDScheduleFree
from optrepro.papers.schedulefree_2024.reference import ScheduleFreeReference
from tests.reference.lockstep import SHAPES, lockstep

pytestmark = pytest.mark.reference


class _Literal(torch.optim.Optimizer):
    """Adapts a per-tensor literal reference (object with .step(grad) -> new θ) to the optimizer API."""

    def __init__(self, params, make):
        super().__init__(params, {})
        self.refs = [make(p) for p in self.param_groups[0]["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        for p, r in zip(self.param_groups[0]["params"], self.refs):
            p.copy_(r.step(p.grad))


# diffGrad ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=1e-2, lr=1e-2), dict(betas=(0.5, 0.9), eps=1e-6)])
def test_diffgrad_matches_literal_algorithm(kw):
    lockstep(lambda p: DiffGrad(p, **kw), lambda p: _Literal(p, lambda t: DiffGradReference(t, **kw)))


def test_diffgrad_second_opinion_pytorch_optimizer():
    """pytorch-optimizer puts ε inside the uncorrected root: equal at ε = 0, O(ε) apart otherwise."""
    from pytorch_optimizer import DiffGrad as Ref
    lockstep(lambda p: DiffGrad(p, lr=1e-2, eps=0.0), lambda p: Ref(p, lr=1e-2, eps=0.0, foreach=False), zeros=False)
    lockstep(lambda p: DiffGrad(p, lr=1e-2), lambda p: Ref(p, lr=1e-2, foreach=False), atol=1e-6, rtol=1e-5)


# AdamP / SGDP ------------------------------------------------------------------------------------
def _scale_invariant_grad(a, g):
    """Noise made orthogonal to each output channel of conv-shaped weights (as BatchNorm makes it),
    so both the projection branch and the plain branch are exercised."""
    grad = torch.randn(a.shape, generator=g, dtype=a.dtype)
    if a.dim() == 4:
        r, q = a.reshape(a.shape[0], -1), grad.reshape(a.shape[0], -1)
        grad = (q - (q * r).sum(1, keepdim=True) / (r * r).sum(1, keepdim=True) * r).reshape(a.shape)
    return grad


ADAMP_SHAPES = [(6, 3, 3, 3), (5, 3), (7,), (4, 2, 2, 2)]


@pytest.mark.parametrize("kw", [dict(weight_decay=1e-2), dict(weight_decay=1e-2, nesterov=True, delta=0.2),
                                dict(betas=(0.8, 0.99), wd_ratio=0.5, weight_decay=1e-1)])
def test_adamp_matches_official_package(kw):
    from adamp import AdamP as Ref
    lockstep(lambda p: AdamP(p, lr=1e-2, **kw), lambda p: Ref(p, lr=1e-2, **kw), shapes=ADAMP_SHAPES,
             grad_fn=_scale_invariant_grad, zeros=False)


@pytest.mark.parametrize("kw", [dict(weight_decay=1e-3), dict(weight_decay=1e-3, nesterov=True),
                                dict(momentum=0.5, dampening=0.5, weight_decay=1e-2)])
def test_sgdp_matches_official_package(kw):
    from adamp import SGDP as Ref
    kw = {"momentum": 0.9, **kw}
    lockstep(lambda p: SGDP(p, lr=0.05, **kw), lambda p: Ref(p, lr=0.05, **kw), shapes=ADAMP_SHAPES,
             grad_fn=_scale_invariant_grad, zeros=False)


def test_adamp_projection_removes_radial_component():
    """On a scale-invariant weight the step has no component along θ (per channel), so the norm
    grows only by the second-order term, while Adam's step grows it at first order."""
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    g = _scale_invariant_grad(w, torch.Generator().manual_seed(0))
    p = torch.nn.Parameter(w.clone())
    opt = AdamP([p], lr=0.1, betas=(0.0, 0.999))  # β1 = 0: the update is along g/denom, not orthogonal
    p.grad = g
    opt.step()
    radial = ((p.detach() - w).reshape(4, -1) * w.reshape(4, -1)).sum(1)
    assert radial.abs().max() < 1e-5


# AdaBound / AMSBound -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls,ams", [(AdaBound, False), (AMSBound, True)])
@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=5e-4, gamma=0.1, final_lr=0.05)])
def test_adabound_matches_official_package(cls, ams, kw):
    """With a step LR schedule, so final_lr's scaling by lr / initial lr is exercised."""
    from adabound import AdaBound as Ref

    def decay(step, o, r):
        if step == 60:
            for opt in (o, r):
                for grp in opt.param_groups:
                    grp["lr"] *= 0.1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package uses a deprecated Tensor.add overload
        lockstep(lambda p: cls(p, lr=1e-2, **kw), lambda p: Ref(p, lr=1e-2, amsbound=ams, **kw), before_step=decay)


# Schedule-free -----------------------------------------------------------------------------------
SF_CASES = [
    (AdamWScheduleFree, "AdamWScheduleFree", dict(lr=1e-2), dict(adam=True, beta=0.9)),
    (AdamWScheduleFree, "AdamWScheduleFree", dict(lr=1e-2, weight_decay=1e-2, warmup_steps=10, betas=(0.95, 0.99)),
     dict(adam=True, beta=0.95, beta2=0.99)),
    (SGDScheduleFree, "SGDScheduleFree", dict(lr=0.1, momentum=0.9), dict(beta=0.9)),
    (SGDScheduleFree, "SGDScheduleFree", dict(lr=0.1, momentum=0.8, weight_decay=1e-2, warmup_steps=10, r=1.0),
     dict(beta=0.8)),
]


@pytest.mark.parametrize("cls,ref_name,kw,lit", SF_CASES, ids=["adamw", "adamw-wd-warmup", "sgd", "sgd-wd-warmup-r"])
def test_schedulefree_matches_package_and_three_sequence_form(cls, ref_name, kw, lit):
    import schedulefree
    ref_cls = getattr(schedulefree, ref_name)
    torch.manual_seed(0)
    init = [torch.randn(s, dtype=torch.float64) for s in SHAPES]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.clone()) for t in init]
    o, r = cls(ours, **kw), ref_cls(ref, foreach=False, **kw)
    lits = [ScheduleFreeReference(t, lr=kw["lr"], weight_decay=kw.get("weight_decay", 0.0),
                                  warmup_steps=kw.get("warmup_steps", 0), r=kw.get("r", 0.0), **lit) for t in init]
    o.train(), r.train()
    g = torch.Generator().manual_seed(1)
    for step in range(80):
        for a, b, lt in zip(ours, ref, lits):
            grad = 0.3 * a.detach() ** 3 - a.detach() + 0.5 * torch.randn(a.shape, generator=g, dtype=a.dtype)
            a.grad, b.grad = grad.clone(), grad.clone()
            lt.step(grad)
        o.step(), r.step()
        for a, b, lt in zip(ours, ref, lits):
            torch.testing.assert_close(a.detach(), b.detach(), atol=1e-12, rtol=1e-10)
            torch.testing.assert_close(a.detach(), lt.y, atol=1e-10, rtol=1e-9)
        if step in (30, 79):  # eval() puts x in the parameters, train() restores y
            o.eval(), r.eval()
            for a, b, lt in zip(ours, ref, lits):
                torch.testing.assert_close(a.detach(), b.detach(), atol=1e-12, rtol=1e-10)
                torch.testing.assert_close(a.detach(), lt.x, atol=1e-10, rtol=1e-9)
            o.train(), r.train()


def test_schedulefree_step_in_eval_mode_is_an_error():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = AdamWScheduleFree([p])
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="train"):
        opt.step()


# DoG / L-DoG -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,ref_name", [(DoG, "DoG"), (LDoG, "LDoG")])
@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=1e-3, reps_rel=1e-4)])
def test_dog_matches_official_package_with_averaging(cls, ref_name, kw):
    import copy

    import dog
    torch.manual_seed(0)
    m1 = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    m2 = copy.deepcopy(m1)
    o, r = cls(m1.parameters(), **kw), getattr(dog, ref_name)(m2.parameters(), **kw)
    avg = dog.PolynomialDecayAverager(m2)
    for step in range(60):
        x = torch.randn(16, 4, dtype=torch.float64)
        for m in (m1, m2):
            m.zero_grad()
            (m(x) ** 2).sum().backward()
        o.step(), r.step(), avg.step()
        for a, b in zip(m1.parameters(), m2.parameters()):
            torch.testing.assert_close(a.detach(), b.detach(), atol=1e-12, rtol=1e-10)
    o.eval()
    for a, b in zip(m1.parameters(), avg.averaged_model.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), atol=1e-12, rtol=1e-10)
    o.train()
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), atol=1e-12, rtol=1e-10)


# Cautious ----------------------------------------------------------------------------------------
def test_cautious_adamw_literal_one_step():
    """Algorithm by hand from a non-zero state, both normalizations."""
    p, g = torch.tensor([1.0, -2.0, 0.5, 3.0]), torch.tensor([0.3, -0.1, -1.0, 0.2])
    m, v = torch.tensor([0.2, 0.4, 0.1, -0.5]), torch.tensor([0.1, 0.2, 0.3, 0.4])
    lr, b1, b2, eps, wd, t = 0.1, 0.9, 0.99, 1e-8, 0.01, 3
    m1, v1 = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    u = (m1 / (1 - b1 ** t)) / ((v1 / (1 - b2 ** t)).sqrt() + eps)
    phi = (u * g > 0).float()
    for by_mean, scale in ((False, 4 / (phi.sum() + 1)), (True, 1 / phi.mean())):
        want = p * (1 - lr * wd) - lr * u * phi * scale
        q, mq, vq = p.clone(), m.clone(), v.clone()
        cadamw_update.eager(q, g, mq, vq, lr, b1, b2, eps, wd, 1 - b1 ** t, 1 - b2 ** t, True, by_mean)
        torch.testing.assert_close(q, want)
        torch.testing.assert_close(mq, m1)
    assert phi.tolist() == [1.0, 0.0, 1.0, 0.0]  # the case exercises both kept and dropped coordinates


def test_cautious_lion_literal_one_step():
    p, g, m = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.3, -0.5, 1.0]), torch.tensor([-1.0, -0.2, 0.2])
    lr, b1, b2, wd = 0.1, 0.9, 0.99, 0.5
    u = torch.sign(b1 * m + (1 - b1) * g)
    phi = (u * g > 0).float()
    want = p * (1 - lr * wd) - lr * u * phi * 3 / (phi.sum() + 1)
    clion_update.eager(p, g, m, lr, b1, b2, wd, True, False)
    torch.testing.assert_close(p, want)
    assert phi.tolist() == [0.0, 1.0, 1.0]


def test_cautious_off_is_adamw_and_lion():
    """With the mask off, the same kernels are torch's AdamW and the Lion package, step by step."""
    from lion_pytorch import Lion as RefLion
    lockstep(lambda p: CAdamW(p, lr=1e-2, weight_decay=1e-2, cautious=False),
             lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2, foreach=False))
    lockstep(lambda p: CLion(p, lr=1e-3, weight_decay=0.1, cautious=False),
             lambda p: RefLion(p, lr=1e-3, weight_decay=0.1))


# Grams -------------------------------------------------------------------------------------------
def test_grams_matches_official_package():
    """grams-pytorch puts ε inside the uncorrected root: equal at ε = 0, O(ε) apart otherwise."""
    from grams import Grams as Ref
    lockstep(lambda p: Grams(p, lr=1e-2, eps=0.0, weight_decay=1e-2),
             lambda p: Ref(p, lr=1e-2, eps=0.0, weight_decay=1e-2), zeros=False)
    lockstep(lambda p: Grams(p, lr=1e-2, eps=1e-8), lambda p: Ref(p, lr=1e-2, eps=1e-8), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cls,every_coordinate", [(CAdamW, False), (Grams, True)])
def test_no_coordinate_moves_uphill(cls, every_coordinate):
    """Cautious: each coordinate moves against its gradient or not at all (the mask). Grams: each
    moves against its gradient, always (the sign of g_t with |u_t| > 0)."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(200))
    opt = cls([p], lr=0.1)
    still = 0
    for _ in range(20):
        before = p.detach().clone()
        p.grad = torch.randn(200)
        opt.step()
        step = p.detach() - before
        assert (step * p.grad <= 0).all()
        still += int((step == 0).sum())
    assert still == 0 if every_coordinate else still > 0  # the cautious mask did drop coordinates


@pytest.mark.parametrize("cls", [DoG, LDoG])
def test_dog_statistics_never_reset_when_a_gradient_is_missing(cls):
    """G (summed squared gradient norms) and r̄ (max distance) only grow, also on steps where the
    group's first parameter has no gradient (an earlier version kept them in that parameter's state
    and re-initialised them: G fell 130.4 -> 76.2)."""
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(4, 3))
    opt = cls([a, b])

    def stats():
        if cls is DoG:
            return [(opt.param_groups[0]["G"], opt.param_groups[0]["rbar"])]
        return [(opt.state[p]["G"], opt.state[p]["rbar"]) for p in (a, b) if "G" in opt.state[p]]

    prev = None
    for t in range(8):
        opt.zero_grad()
        ((a ** 2).sum() * (t % 3 != 1) + (b ** 3).sum()).backward()
        if t % 3 == 1:
            a.grad = None
        opt.step()
        now = stats()
        if prev is not None:
            for (g0, r0), (g1, r1) in zip(prev, now):
                assert g1 >= g0 and r1 >= r0
        prev = now
    assert all(type(x) is float for st in stats() for x in st)  # float64, not cast by load_state_dict
