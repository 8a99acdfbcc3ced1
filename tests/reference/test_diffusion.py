"""common.diffusion against closed forms and diffusers: the exact mixture model is Tweedie's formula on
the exact density; DDIM/DDPM steps equal diffusers' schedulers; flow Euler is DDIM; the second-order
samplers converge at second order; a perfect model at scale 1 reproduces the conditional
distribution; CFG, APG and CFG-Zero* equal diffusers' guiders; bad input fails before sampling."""
import math

import pytest
import torch

from optrepro.diffusion.guidance import APG, CFG, AdaptiveGuidance, CFGZeroStar, make_rule
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import sample
from optrepro.errors import ConfigError

pytestmark = pytest.mark.reference
MIX = GaussianMixture.ring()


class Linear(torch.nn.Module):
    """A fixed 'network' for step tests: pred = A x + b t + class offset."""
    n_classes, has_uncond = 4, True

    def forward(self, x, t, c):
        return 0.3 * x.flip(-1) + 0.1 * t[:, None].to(x.dtype) + 0.05 * c[:, None].to(x.dtype)


@pytest.mark.parametrize("kind", ["vp", "flow"])
@pytest.mark.parametrize("c", [0, 3, 4])
def test_exact_denoiser_is_tweedie(kind, c):
    """E[x0 | x_t] = (x + σ² ∇ log p_t(x)) / α, with the gradient of the exact noisy density by autograd."""
    pr = Process(kind)
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.randn(64, 2, generator=g, dtype=torch.float64)).requires_grad_()
    for t in (0.05, 0.4, 0.9):
        a, s = float(pr.alpha(t)), float(pr.sigma(t))
        score = torch.autograd.grad(MIX.log_prob(x, torch.full((64,), c), a, s).sum(), x)[0]
        want = (x + s * s * score) / a
        got = MIX.posterior_mean(x.detach(), torch.full((64,), t, dtype=torch.float64), torch.full((64,), c), pr)
        torch.testing.assert_close(got, want.detach(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["vp", "flow"])
@pytest.mark.parametrize("param", ["eps", "velocity", "x0"])
def test_split_inverts_join(kind, param):
    pr, g = Process(kind), torch.Generator().manual_seed(1)
    x0, eps = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=torch.float64)
    x = pr.noisy(x0, eps, t)
    torch.testing.assert_close(pr.target(x0, eps, t, param), pr.join(x0, eps, x, t, param))
    a, b = pr.split(pr.join(x0, eps, x, t, param), x, t, param)
    torch.testing.assert_close((a, b), (x0, eps))


def test_vp_coefficients():
    """α² + σ² = 1, and the derivatives equal finite differences."""
    pr = Process("vp")
    t = torch.linspace(0.01, 0.99, 9, dtype=torch.float64)
    torch.testing.assert_close(pr.alpha(t) ** 2 + pr.sigma(t) ** 2, torch.ones_like(t))
    h = 1e-6
    torch.testing.assert_close(pr.dalpha(t), (pr.alpha(t + h) - pr.alpha(t - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(pr.dsigma(t), (pr.sigma(t + h) - pr.sigma(t - h)) / (2 * h), rtol=1e-6, atol=1e-8)


def _one_step(sampler, t, tn, x, seed=0, kind="vp", param="eps"):
    pr = Process(kind)
    out, _ = sample(Linear(), pr, param, CFG(1.0), torch.tensor([t, tn], dtype=torch.float64),
                    torch.zeros(len(x), dtype=torch.long), torch.Generator().manual_seed(seed), sampler,
                    x_init=x.clone(), dtype=x.dtype)
    return out


def _scheduler(cls, t, tn, **kw):
    pr = Process("vp")
    sch = cls(num_train_timesteps=1000, clip_sample=False, **kw)
    sch.set_timesteps(5)
    sch.alphas_cumprod = sch.alphas_cumprod.clone().double()
    sch.alphas_cumprod[600] = float(pr.alpha(t)) ** 2
    sch.alphas_cumprod[400] = float(pr.alpha(tn)) ** 2
    return sch


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_and_ancestral_steps_equal_diffusers_ddim(eta):
    from diffusers import DDIMScheduler
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 2, generator=g, dtype=torch.float64)
    sch = _scheduler(DDIMScheduler, 0.6, 0.4)
    eps = Linear()(x, torch.full((16,), 0.6, dtype=torch.float64), torch.zeros(16, dtype=torch.long))
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    want = sch.step(eps, 600, x, eta=eta, variance_noise=z).prev_sample
    got = _one_step("ddim" if eta == 0 else "ddpm", 0.6, 0.4, x, seed=7)
    torch.testing.assert_close(got, want)


def test_ancestral_step_equals_diffusers_ddpm():
    from diffusers import DDPMScheduler
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(4))
    sch = _scheduler(DDPMScheduler, 0.6, 0.4, variance_type="fixed_small")
    sch.alphas_cumprod = sch.alphas_cumprod.float()
    eps = Linear()(x, torch.full((16,), 0.6), torch.zeros(16, dtype=torch.long))
    want = sch.step(eps, 600, x, generator=torch.Generator().manual_seed(9)).prev_sample
    got = _one_step("ddpm", 0.6, 0.4, x, seed=9)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_flow_euler_is_ddim():
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for t, tn in ((1.0, 0.7), (0.5, 0.2)):
        torch.testing.assert_close(_one_step("euler", t, tn, x, kind="flow", param="velocity"),
                                   _one_step("ddim", t, tn, x, kind="flow", param="velocity"))


def _exact_run(kind, sampler, steps, grid="uniform", rule=None, n=400, seed=0, param=None):
    pr = Process(kind)
    param = param or ("eps" if kind == "vp" else "velocity")
    labels = torch.arange(4).repeat_interleave(n // 4)
    x0 = pr.sigma(pr.grid(grid, steps)[0]) * torch.randn(len(labels), 2, generator=torch.Generator().manual_seed(seed),
                                                         dtype=torch.float64)
    return sample(ExactDenoiser(MIX, pr, param), pr, param, rule or CFG(1.0), pr.grid(grid, steps), labels,
                  torch.Generator().manual_seed(seed), sampler, x_init=x0, dtype=torch.float64)


@pytest.mark.parametrize("sampler,order", [("euler", 1), ("ddim", 1), ("heun", 2), ("midpoint", 2), ("edm", 2)])
def test_sampler_convergence_order(sampler, order):
    """Same initial noise, exact flow model: halving the step halves (1st order) or quarters (2nd) the error
    against a 2,000-step Heun solution, from t = 0.95 (EDM's x / α needs α > 0) to t = 0.1."""
    pr = Process("flow")
    labels = torch.arange(4).repeat_interleave(50)
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = ExactDenoiser(MIX, pr, "velocity")

    def run(s, smp):  # integrate 1 -> 0.1 on a uniform grid, then stop (the final jump to 0 is exact for every method)
        ts = torch.cat([torch.linspace(0.95, 0.1, s + 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
        x, _ = sample(m, pr, "velocity", CFG(1.0), ts, labels,
                      torch.Generator(), smp, x_init=z.clone(), dtype=torch.float64)
        return x

    ref = run(2000, "heun")
    e1, e2 = ((run(s, sampler) - ref).norm(dim=1).mean().item() for s in (16, 32))
    ratio = e1 / e2
    assert (1.6 < ratio < 2.6) if order == 1 else ratio > 3.2, f"{sampler}: error ratio {ratio:.2f}"


@pytest.mark.parametrize("kind,sampler,steps", [("vp", "ddpm", 500), ("vp", "edm", 64), ("flow", "heun", 64)])
def test_perfect_model_at_scale_1_reproduces_the_conditional(kind, sampler, steps):
    """Mean log-density under the intended class and each class's mode balance match exact samples within
    4 standard errors, and the sliced W2 to exact samples is within 2x that of a second exact sample; at γ = 4
    the sliced W2 is more than twice as large (the test has power)."""
    from optrepro.diffusion.metrics import sliced_wasserstein
    labels = torch.arange(4).repeat_interleave(500)
    x, _ = _exact_run(kind, sampler, steps, grid="edm" if sampler == "edm" else "uniform", n=2000)
    ref = MIX.sample(labels, torch.Generator().manual_seed(1))
    lp, lr = MIX.log_prob(x, labels), MIX.log_prob(ref, labels)
    se = math.sqrt(lp.var() / len(lp) + lr.var() / len(lr))
    assert abs(lp.mean() - lr.mean()) < 4 * se, f"loglik {lp.mean():.3f} vs {lr.mean():.3f} (se {se:.3f})"
    first = ((x[:, None] - MIX.means[None]).norm(dim=-1).argmin(1) % 2 == 0).double()  # first mode of its class
    assert abs(first.mean() - 0.5) < 4 * math.sqrt(0.25 / len(first))
    xg, _ = _exact_run(kind, sampler, steps, grid="edm" if sampler == "edm" else "uniform", n=2000, rule=CFG(4.0))
    floor = sliced_wasserstein(MIX.sample(labels, torch.Generator().manual_seed(2)), ref)
    sw1, swg = sliced_wasserstein(x, ref), sliced_wasserstein(xg, ref)
    assert sw1 < 2 * floor and swg > 2 * sw1, (floor, sw1, swg)


def test_cfg_is_the_same_in_every_space():
    """u + γ(c - u) has weights summing to one, and the conversions are affine: guiding ε, x0 or v is equal."""
    outs = [_exact_run("vp", "ddim", 20, rule=r, n=40)[0] for r in
            (CFG(3.0), APG(3.0, eta=1.0, space="eps"), APG(3.0, eta=1.0, space="x0"), APG(3.0, eta=1.0, space="velocity"))]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0])


def _diffusers_guider(cls, **kw):
    g = cls(**kw)
    g.set_state(step=0, num_inference_steps=10, timestep=torch.tensor(500))
    return g


def test_cfg_equals_diffusers():
    from diffusers.guiders import ClassifierFreeGuidance
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    ref = _diffusers_guider(ClassifierFreeGuidance, guidance_scale=5.0).forward(c, u).pred
    rule = CFG(5.0)
    rule.start(4, 10)
    torch.testing.assert_close(rule(c, u, 0, 0.5, None), ref)


@pytest.mark.parametrize("eta,r,beta", [(0.0, 0.0, 0.0), (0.0, 2.5, -0.5), (0.3, 1.0, -0.5), (1.0, 0.0, 0.0)])
def test_apg_equals_diffusers_original_formulation(eta, r, beta):
    """Three consecutive steps (the momentum carries over). diffusers' `use_original_formulation=True`
    guides from D_c with scale w; ours writes it as γ = w + 1 (γ = 1: no guidance)."""
    from diffusers.guiders import AdaptiveProjectedGuidance
    from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer
    ref = _diffusers_guider(AdaptiveProjectedGuidance, guidance_scale=6.0, eta=eta,
                            adaptive_projected_guidance_rescale=r, use_original_formulation=True,
                            adaptive_projected_guidance_momentum=beta if beta else None)
    ref.momentum_buffer = MomentumBuffer(beta) if beta else None
    rule = APG(7.0, eta=eta, norm_threshold=r, momentum=beta)
    rule.start(4, 10)
    g = torch.Generator().manual_seed(1)
    for i in range(3):
        c, u = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
        torch.testing.assert_close(rule(c, u, i, 0.5, None), ref.forward(c, u).pred)


def test_diffusers_default_apg_drops_the_parallel_part_of_the_conditional():
    """Finding: with use_original_formulation=False (the default), diffusers guides from D_u:
    D_u + γ(Δ_⊥ + η Δ_∥). At η = 0 that is D_u + γ Δ_⊥, while the paper's D_c + (γ - 1) Δ_⊥ equals
    D_u + Δ_∥ + γ Δ_⊥: the two differ by exactly Δ_∥."""
    from diffusers.guiders import AdaptiveProjectedGuidance
    g = torch.Generator().manual_seed(2)
    c, u = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    ref = _diffusers_guider(AdaptiveProjectedGuidance, guidance_scale=5.0, eta=0.0,
                            adaptive_projected_guidance_rescale=0.0).forward(c, u).pred
    rule = APG(5.0, eta=0.0)
    rule.start(4, 10)
    d = (c - u).double()
    par = ((d * c).flatten(1).sum(1) / (c * c).flatten(1).sum(1))[:, None, None, None] * c.double()
    torch.testing.assert_close(rule(c, u, 0, 0.5, None) - ref, par.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("step", [0, 1, 3])
def test_cfg_zero_star_equals_diffusers(step):
    from diffusers.guiders import ClassifierFreeZeroStarGuidance
    g = torch.Generator().manual_seed(3)
    c, u = torch.randn(4, 2, 4, 4, generator=g), torch.randn(4, 2, 4, 4, generator=g)
    ref = ClassifierFreeZeroStarGuidance(guidance_scale=4.0, zero_init_steps=2)
    ref.set_state(step=step, num_inference_steps=10, timestep=torch.tensor(500))
    rule = CFGZeroStar(4.0, zero_steps=2)
    rule.start(4, 10)
    torch.testing.assert_close(rule(c, u, step, 0.5, None), ref.forward(c, u).pred)
    want = (False, False) if step < 2 else (True, True)
    assert tuple(bool(m.all()) for m in rule.branches(step, 0.5)) == want


def test_adaptive_guidance_switches_per_sample_and_counts_evaluations():
    base, info = _exact_run("vp", "ddim", 20, rule=CFG(3.0), n=40)
    assert info["nfe"] == 40
    same, info1 = _exact_run("vp", "ddim", 20, rule=AdaptiveGuidance(3.0, threshold=1.0), n=40)
    torch.testing.assert_close(same, base)  # cos never exceeds 1: CFG at every step
    assert info1["nfe"] == 40
    _, info2 = _exact_run("vp", "ddim", 20, rule=AdaptiveGuidance(3.0, threshold=-1.0), n=40)
    assert info2["nfe"] == 21  # both branches once, then the conditional one alone
    rule = AdaptiveGuidance(3.0, threshold=0.999, space="x0")
    _, info3 = _exact_run("vp", "ddim", 20, rule=rule, n=40)
    assert 21 < info3["nfe"] < 40 and rule.switched.any()


@pytest.mark.parametrize("scale", [-1.0, float("nan"), float("inf")])
def test_bad_scale_is_refused(scale):
    with pytest.raises(ConfigError, match="guidance scale"):
        make_rule("cfg", scale)


def test_bad_steps_and_missing_uncond_branch_fail_before_sampling():
    with pytest.raises(ConfigError, match="steps"):
        Process("vp").grid("uniform", 0)

    class NoDropout(Linear):
        has_uncond = False

    calls = []

    class Counting(NoDropout):
        def forward(self, *a):
            calls.append(1)
            return super().forward(*a)

    pr = Process("vp")
    with pytest.raises(ConfigError, match="label dropout"):
        sample(Counting(), pr, "eps", CFG(2.0), pr.grid("uniform", 5), torch.zeros(3, dtype=torch.long),
               torch.Generator(), "ddim", shape=(2,))
    assert not calls
    x, _ = sample(Counting(), pr, "eps", CFG(1.0), pr.grid("uniform", 5), torch.zeros(3, dtype=torch.long),
                  torch.Generator(), "ddim", shape=(2,))  # conditional sampling needs no dropout
    assert x.shape == (3, 2)
