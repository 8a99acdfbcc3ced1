"""annealing_guidance_2025 and CFG++ against their literal equations and closed forms, on the exact mixture.

- CFG++ (common.diffusion.guidance.CFGPP): the DDIM loop written out (x̂0 from ε̂ = ε_u + w δ, re-noised with
  ε_u) equals the sampler's; at w = 0 it is unconditional DDIM; and it equals CFG at the step-dependent
  γ_t = w r_t / (r_t - r_t') (r = σ / α): in r-space a CFG++ step moves ε̂ by r_t and ε_u back by r_t'.
- The scheduler's loss equals the paper's equation written out; its gradient reaches θ through the frozen
  model's second evaluation (finite differences).
- With λ = 0 the loss is quadratic in a constant w with minimiser <δ, ε - ε_u> / ||δ||², which is 1 for
  the exact model (ε_c = E[ε | z_t, c]); train_scheduler drives a constant w there.
"""
import pytest
import torch

from optrepro.diffusion.guidance import CFG, CFGPP, Rule
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import sample
from optrepro.papers.annealing_guidance_2025.method import Scheduler, scheduled_rule, scheduler_loss, train_scheduler

pytestmark = pytest.mark.reference
MIX = GaussianMixture.ring()
NULL = MIX.n_classes
PROC = Process("vp")
MODEL = ExactDenoiser(MIX, PROC, "eps")
LABELS = torch.arange(4).repeat_interleave(25)


def _x_init(n=100, seed=0):
    return float(PROC.sigma(1.0)) * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _sample(rule, times, x):
    out, info = sample(MODEL, PROC, "eps", rule, times, LABELS, torch.Generator().manual_seed(1), "ddim",
                       shape=(2,), x_init=x.clone(), dtype=torch.float64)
    return out, info


def _literal_cfgpp(w, times, x):
    for t, tn in zip(times[:-1].tolist(), times[1:].tolist()):
        tt = torch.full((len(x),), t, dtype=torch.float64)
        ec, eu = MODEL(x, tt, LABELS), MODEL(x, tt, torch.full_like(LABELS, NULL))
        e_hat = eu + w * (ec - eu)
        x0 = (x - float(PROC.sigma(t)) * e_hat) / float(PROC.alpha(t))
        x = x0 if tn == 0 else float(PROC.alpha(tn)) * x0 + float(PROC.sigma(tn)) * eu
    return x


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_cfgpp_is_its_equation(w):
    times = PROC.grid("uniform", 6)
    x = _x_init()
    got, info = _sample(CFGPP(w), times, x)
    assert torch.allclose(got, _literal_cfgpp(w, times, x), atol=1e-12, rtol=0)
    assert info["nfe"] == (12 if w else 6)  # w = 0 skips the conditional branch


def test_cfgpp_at_zero_is_unconditional_ddim():
    times = PROC.grid("uniform", 6)
    x = _x_init()
    assert torch.allclose(_sample(CFGPP(0.0), times, x)[0], _sample(CFG(0.0), times, x)[0], atol=1e-12, rtol=0)


class StepCFG(Rule):
    """CFG whose γ changes per step: γ_i."""
    def __init__(self, gammas):
        super().__init__(1.0)
        self.gammas, self.needs_uncond = gammas, True

    def __call__(self, cond, uncond, i, t, x):
        return uncond + self.gammas[i] * (cond - uncond)


def test_cfgpp_is_cfg_at_a_step_dependent_scale():
    times = PROC.grid("uniform", 8)
    w = 0.4
    r = (PROC.sigma(times) / PROC.alpha(times).clamp_min(1e-300)).tolist()
    gammas = [w * r[i] / (r[i] - r[i + 1]) for i in range(8)]  # the last step (r' = 0): γ = w
    x = _x_init()
    got, ref = _sample(CFGPP(w), times, x)[0], _sample(StepCFG(gammas), times, x)[0]
    assert torch.allclose(got, ref, atol=1e-9, rtol=0)
    # 0 < r' < r, so r / (r - r') > 1: CFG++ at w = 1 (the ε-loss's choice, below) is stronger guidance than the
    # conditional model at every step but the last, and more so the finer the grid
    assert all(g / w > 1.0 for g in gammas[:-1]) and gammas[-1] == pytest.approx(w)


def test_scheduled_rule_at_a_constant_is_cfgpp():
    times = PROC.grid("uniform", 6)
    sched = Scheduler(w_init=0.7)  # the head starts at zero: constant 0.7
    x = _x_init()
    rule = scheduled_rule(sched, 0.5)
    got = _sample(rule, times, x)[0]
    assert torch.allclose(got, _sample(CFGPP(0.7), times, x)[0], atol=1e-6, rtol=0)
    assert rule.trace == pytest.approx([0.7] * 6)


def _batch(n=64, seed=3):
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 4, (n,), generator=g)
    x0 = MIX.sample(c, g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    times = PROC.grid("uniform", 10)
    i = torch.randint(0, 9, (n,), generator=g)
    lam = torch.rand(n, generator=g, dtype=torch.float64)
    return x0, c, eps, times[i], times[i + 1], lam


def _trained_like_scheduler():
    torch.manual_seed(0)
    s = Scheduler(w_init=0.8)
    torch.nn.init.normal_(s.head.weight, std=0.3)  # a non-constant w
    return s


def test_loss_is_the_papers_equation():
    x0, c, eps, t, tn, lam = _batch()
    s = _trained_like_scheduler()
    loss, parts = scheduler_loss(MODEL, PROC, s, x0, c, eps, t, tn, lam, NULL)
    a, sg = PROC.alpha(t)[:, None], PROC.sigma(t)[:, None]
    an, sn = PROC.alpha(tn)[:, None], PROC.sigma(tn)[:, None]
    zt = a * x0 + sg * eps
    null = torch.full_like(c, NULL)
    ec, eu = MODEL(zt, t, c), MODEL(zt, t, null)
    w = s(t, (ec - eu).norm(dim=1), lam).double()[:, None]
    e_hat = eu + w * (ec - eu)
    z_next = an * (zt - sg * e_hat) / a + sn * eu
    d_next = MODEL(z_next, tn, c) - MODEL(z_next, tn, null)
    ref = ((1 - lam) * ((e_hat - eps) ** 2).sum(1) / 2 + lam * (d_next ** 2).sum(1) / 2).mean()
    assert float(loss.detach()) == pytest.approx(float(ref), rel=1e-5)
    assert parts["w"] == pytest.approx(float(w.mean()), rel=1e-6)


def test_delta_loss_gradient_goes_through_the_second_evaluation():
    x0, c, eps, t, tn, _ = _batch()
    lam = torch.ones(len(c), dtype=torch.float64)  # δ-loss only: θ is reached only through ε(z_t')
    s = _trained_like_scheduler()
    loss, _ = scheduler_loss(MODEL, PROC, s, x0, c, eps, t, tn, lam, NULL)
    loss.backward()
    g = float(s.head.bias.grad)
    assert abs(g) > 1e-4
    h = 1e-3
    vals = []
    for d in (h, -h):
        with torch.no_grad():
            s.head.bias += d
        vals.append(float(scheduler_loss(MODEL, PROC, s, x0, c, eps, t, tn, lam, NULL)[0]))
        with torch.no_grad():
            s.head.bias -= d
    assert g == pytest.approx((vals[0] - vals[1]) / (2 * h), rel=2e-3)


class ConstW(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w)))

    def forward(self, t, delta_norm, lam):
        return self.w.expand(len(delta_norm))


def test_eps_loss_minimiser_is_closed_form_and_one_for_the_exact_model():
    x0, c, eps, t, tn, _ = _batch(n=20000, seed=5)
    lam = torch.zeros(len(c), dtype=torch.float64)
    zt = PROC.alpha(t)[:, None] * x0 + PROC.sigma(t)[:, None] * eps
    ec, eu = MODEL(zt, t, c), MODEL(zt, t, torch.full_like(c, NULL))
    d = ec - eu
    w_star = float((d * (eps - eu)).sum() / (d * d).sum())
    f = lambda w: float(scheduler_loss(MODEL, PROC, ConstW(w), x0, c, eps, t, tn, lam, NULL)[0])  # noqa: E731
    assert f(w_star) < min(f(w_star - 0.01), f(w_star + 0.01))
    assert f(w_star - 0.01) == pytest.approx(f(w_star + 0.01), rel=1e-6)  # a parabola around w*
    assert w_star == pytest.approx(1.0, abs=0.05)  # ε_c is the best noise estimate: no guidance by this loss alone


def test_train_scheduler_reaches_the_eps_loss_minimiser():
    def draw(n, gen):
        c = torch.randint(0, 4, (n,), generator=gen)
        return MIX.sample(c, gen), c
    s = train_scheduler(MODEL, PROC, draw, PROC.grid("uniform", 10), NULL, steps=300, batch=256, lr=0.05,
                        gen=torch.Generator().manual_seed(0), scheduler=ConstW(0.0), lam=0.0)
    assert float(s.w) == pytest.approx(1.0, abs=0.1)
