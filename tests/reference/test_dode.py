"""dode_2023: D-DDIM against its literal update and its base solver.

- λ = 0 is DDIM exactly (common.diffusion.samplers' DDIM, itself equal to diffusers' DDIMScheduler step in
  tests/reference/test_diffusion.py).
- Two steps written out: x_2 = α x̂0_1 + σ ε̂_1 + λ_1 α (x̂0_1 - x̂0_0).
- The fit: each λ_i is the least-squares solution (the residual to the teacher is orthogonal to the
  correction direction, so any other λ_i fits worse); with scale 1 the teacher is DDIM itself and every
  λ is 0; the teacher's grid contains the student's.
"""
import pytest
import torch

from optrepro.diffusion.dode import _run, ddim, dode_sample, fit_lambdas, refine
from optrepro.diffusion.mixture import ExactDenoiser, GaussianMixture
from optrepro.diffusion.process import Process

pytestmark = pytest.mark.reference
MIX = GaussianMixture.sphere(8)
PR = Process("vp")
MODEL = ExactDenoiser(MIX, PR, "eps")
LABELS = torch.arange(4).repeat_interleave(10)
TIMES = PR.grid("edm", 4)


def noise(seed=0):
    return float(PR.sigma(TIMES[0])) * torch.randn(len(LABELS), 8, generator=torch.Generator().manual_seed(seed),
                                                   dtype=torch.float64)


def test_zero_lambdas_are_ddim():
    x0 = noise()
    got, info = dode_sample(MODEL, PR, "eps", LABELS, TIMES, x0, torch.zeros(4, dtype=torch.float64))
    want, winfo = ddim(MODEL, PR, "eps", LABELS, TIMES, x0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    assert info["nfe"] == winfo["nfe"] == 4


def test_two_steps_written_out():
    x = noise()
    lam = torch.tensor([0.0, 0.7, 0.0, 0.0], dtype=torch.float64)
    times = TIMES
    a, s = (lambda t: float(PR.alpha(t))), (lambda t: float(PR.sigma(t)))

    def den(x, t):
        e = MODEL(x, torch.full((len(x),), float(t), dtype=torch.float64), LABELS)
        return (x - s(t) * e) / a(t), e
    d0, e0 = den(x, times[0])
    x1 = a(times[1]) * d0 + s(times[1]) * e0
    d1, e1 = den(x1, times[1])
    x2 = a(times[2]) * d1 + s(times[2]) * e1 + 0.7 * a(times[2]) * (d1 - d0)
    got, _, _ = _run(MODEL, PR, "eps", LABELS, times[:3], x, lambdas=lam[:2])
    torch.testing.assert_close(got, x2, rtol=0, atol=1e-13)


def test_refine_keeps_the_students_times():
    fine = refine(TIMES, 5)
    assert len(fine) == 4 * 5 + 1
    torch.testing.assert_close(fine[::5], TIMES, rtol=0, atol=0)
    assert bool((fine[1:] < fine[:-1]).all())


def test_fitted_lambdas_are_least_squares_and_vanish_against_itself():
    x0 = noise(1)
    lam, info = fit_lambdas(MODEL, PR, "eps", LABELS, TIMES, x0, scale=1)
    assert float(lam.abs().max()) < 1e-10 and info["fit_mse"] < 1e-20
    lam, info = fit_lambdas(MODEL, PR, "eps", LABELS, TIMES, x0, scale=8)
    assert lam[0] == 0 and bool((lam[1:] != 0).all())
    teacher, _ = ddim(MODEL, PR, "eps", LABELS, refine(TIMES, 8), x0)
    base = float(((dode_sample(MODEL, PR, "eps", LABELS, TIMES, x0, lam)[0] - teacher) ** 2).mean())
    assert abs(base - info["fit_mse"]) < 1e-15
    last = len(lam) - 1  # the last λ only moves the final state: perturbing it must fit the teacher worse
    for h in (-0.05, 0.05):
        moved = lam.clone()
        moved[last] += h
        x = dode_sample(MODEL, PR, "eps", LABELS, TIMES, x0, moved)[0]
        assert float(((x - teacher) ** 2).mean()) > base
    ddim_err = float(((ddim(MODEL, PR, "eps", LABELS, TIMES, x0)[0] - teacher) ** 2).mean())
    assert base < ddim_err
