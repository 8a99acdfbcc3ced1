"""tfg_2024: TFG's special cases against their own papers' updates, written out here step by step on the
exact Gaussian-mixture denoiser with the exact classifier (same noise draws):

- DPS (Chung et al. 2023): x_tn = DDPM step + ζ_t ∇_{x_t} log p(c | x̂0(x_t)), ζ_t = ρ_t α(tn)/α(t);
- LGD (Song et al. 2023): DPS with log f replaced by log mean_k f(x̂0 + r_t δ_k), δ_k ~ N(0, I);
- FreeDoM (Yu et al. 2023): the DPS step repeated with time travel x_t ~ N(√α_t x_tn, (1 - α_t) I);
- MPGD (He et al. 2024): x̂0' = x̂0 + c_t ∇ log f(x̂0), then the DDPM step from x̂0' with the same ε̂.

Also: the schedules have mean 1, the no-guidance setting is plain DDPM sampling, and the beam search
doubles one hyper-parameter at a time and stops at its budget.
"""
import math

import pytest
import torch

from optrepro.diffusion.guidance import CFG
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import sample
from optrepro.diffusion.tfg import TFGParams, beam_search, step_weights, tfg_sample
from optrepro.errors import ConfigError

pytestmark = pytest.mark.reference
MIX = GaussianMixture.ring()
PR = Process("vp")
N, STEPS = 40, 12
LABELS = torch.arange(4).repeat(N // 4)
TIMES = PR.grid("uniform", STEPS)
MODEL = ExactDenoiser(MIX, PR, "eps")
NULL = torch.full((N,), 4)


def log_f(x0):
    return MIX.class_log_posterior(x0, LABELS.repeat(len(x0) // N))


def a(t):
    return float(PR.alpha(t))


def s(t):
    return float(PR.sigma(t))


def denoise(x, t):
    eps = MODEL(x, torch.full((N,), t, dtype=torch.float64), NULL)
    return (x - s(t) * eps) / a(t), eps


def ddpm_step(x, x0, eps, t, tn, gen):
    """q(x_tn | x_t, x̂0) written with the DDPM posterior's mean in (x̂0, x_t) form; ε̂ enters only via x̂0
    when `eps` is None, else through the DDIM-η form a_n x̂0 + √(s_n² - v) ε̂ + √v z."""
    ats = a(t) / a(tn)
    b = s(t) ** 2 - ats ** 2 * s(tn) ** 2
    v = b * s(tn) ** 2 / s(t) ** 2
    z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    if eps is None:
        mean = a(tn) * b / s(t) ** 2 * x0 + ats * s(tn) ** 2 / s(t) ** 2 * x
    else:
        mean = a(tn) * x0 + math.sqrt(max(s(tn) ** 2 - v, 0.0)) * eps
    return mean + math.sqrt(v) * z


def grad_xt(x, t, logf):
    x = x.detach().requires_grad_()
    x0, _ = denoise(x, t)
    return torch.autograd.grad(logf(x0).sum(), x)[0]


def start(gen):
    return s(TIMES[0]) * torch.randn((N, 2), generator=gen, dtype=torch.float64)


def tfg(p, seed=0):
    return tfg_sample(MODEL, PR, "eps", log_f, TIMES, N, torch.Generator().manual_seed(seed), p, shape=(2,))[0]


def dps(rho, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = step_weights("increase", PR, TIMES)
    x = start(gen)
    for i in range(STEPS):
        t, tn = float(TIMES[i]), float(TIMES[i + 1])
        g = grad_xt(x, t, log_f)
        x0, _ = denoise(x, t)
        x = ddpm_step(x, x0, None, t, tn, gen) + rho * float(w[i]) * a(tn) / a(t) * g
    return x


def test_dps_is_tfg_with_variance_guidance_only():
    torch.testing.assert_close(tfg(TFGParams(rho=0.05)), dps(0.05), rtol=0, atol=1e-9)


def test_lgd_is_tfg_with_implicit_dynamics():
    rho, r, k = 0.05, 0.2, 3
    gen = torch.Generator().manual_seed(0)
    w = step_weights("increase", PR, TIMES)
    x = start(gen)
    for i in range(STEPS):
        t, tn = float(TIMES[i]), float(TIMES[i + 1])
        delta = r * s(t) * torch.randn((k, N, 2), generator=gen, dtype=torch.float64)

        def smooth(x0):  # log (1/k) Σ_k p(c | x̂0 + δ_k)
            lp = torch.stack([log_f(x0 + delta[j]) for j in range(k)])
            return torch.log(torch.exp(lp).mean(0))
        g = grad_xt(x, t, smooth)
        x0, _ = denoise(x, t)
        x = ddpm_step(x, x0, None, t, tn, gen) + rho * float(w[i]) * a(tn) / a(t) * g
    torch.testing.assert_close(tfg(TFGParams(rho=rho, sigma=r, mc=k)), x, rtol=0, atol=1e-9)


def test_freedom_is_tfg_with_recurrence():
    rho, rec = 0.05, 3
    gen = torch.Generator().manual_seed(0)
    w = step_weights("increase", PR, TIMES)
    x = start(gen)
    for i in range(STEPS):
        t, tn = float(TIMES[i]), float(TIMES[i + 1])
        for r in range(rec):
            g = grad_xt(x, t, log_f)
            x0, _ = denoise(x, t)
            x_prev = ddpm_step(x, x0, None, t, tn, gen) + rho * float(w[i]) * a(tn) / a(t) * g
            if r < rec - 1:  # time travel back to t
                al = (a(t) / a(tn)) ** 2
                x = math.sqrt(al) * x_prev + math.sqrt(1 - al) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
        x = x_prev
    torch.testing.assert_close(tfg(TFGParams(rho=rho, recur=rec)), x, rtol=0, atol=1e-9)


def test_mpgd_is_tfg_with_one_mean_guidance_step():
    mu = 0.03
    gen = torch.Generator().manual_seed(0)
    w = step_weights("increase", PR, TIMES)
    x = start(gen)
    for i in range(STEPS):
        t, tn = float(TIMES[i]), float(TIMES[i + 1])
        x0, eps = denoise(x, t)
        z = x0.detach().requires_grad_()
        x0p = x0 + mu * float(w[i]) * torch.autograd.grad(log_f(z).sum(), z)[0]
        x = ddpm_step(x, x0p, eps, t, tn, gen)
    torch.testing.assert_close(tfg(TFGParams(mu=mu)), x, rtol=0, atol=1e-9)


def test_no_guidance_is_unconditional_ddpm_and_weights_have_mean_one():
    got = tfg(TFGParams())
    want, _ = sample(MODEL, PR, "eps", CFG(0.0), TIMES, LABELS, torch.Generator().manual_seed(0), "ddpm",
                     shape=(2,), dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for kind in ("increase", "decrease", "constant"):
        assert abs(float(step_weights(kind, PR, TIMES).mean()) - 1) < 1e-12


def test_guidance_moves_samples_to_their_class():
    acc = lambda x: float((torch.stack([MIX.class_log_posterior(x, torch.full_like(LABELS, c))  # noqa: E731
                                         for c in range(4)], 1).argmax(1) == LABELS).double().mean())
    assert acc(tfg(TFGParams())) < 0.5 < 0.9 < acc(tfg(TFGParams(rho=0.05)))


def test_beam_search_doubles_one_hyperparameter_at_a_time_within_budget():
    calls = []

    def score(q):  # minimum at rho = 0.8, mu = 0.2 on the doubling lattice from 0.1
        calls.append((q.rho, q.mu))
        return (math.log2(q.rho / 0.8)) ** 2 + (math.log2(q.mu / 0.2)) ** 2
    best, log = beam_search(score, ["rho", "mu"], TFGParams(rho=0.1, mu=0.1), budget=20, beam=2)
    assert (best.rho, best.mu) == (0.8, 0.2)
    assert len(calls) == len(set(calls)) == len(log) <= 20
    for q, _ in log[1:]:  # every setting is a parent with one hyper-parameter doubled
        assert any(sum(q[k] != p[k] for k in ("rho", "mu")) == 1 and all(q[k] in (p[k], 2 * p[k]) for k in ("rho", "mu"))
                   for p, _ in log if p is not q)
    small, _ = beam_search(score, ["rho"], TFGParams(rho=0.1, mu=0.2), budget=3)
    assert small.rho == 0.4 and len(calls) == len(log) + 3
    with pytest.raises(ConfigError, match="start value"):
        beam_search(score, ["sigma"], TFGParams(), budget=3)
    with pytest.raises(ConfigError, match="integer >= 1"):
        TFGParams(recur=0).check()
