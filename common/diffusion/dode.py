"""D-ODE solvers (Kim et al. 2023, "Distilling ODE Solvers of Diffusion Models into Smaller Steps"):
a few-step DDIM made closer to a many-step one by one scalar per step.

Step i of the student (times t_0 > ... > t_N = 0) is DDIM plus a multiple of the change in the denoised
estimate since the previous step,

    x_{i+1} = α(t_{i+1}) x̂0_i + σ(t_{i+1}) ε̂_i + λ_i α(t_{i+1}) (x̂0_i - x̂0_{i-1}),   λ_0 = 0,

(the authors' update in x / α, written for x). `fit_lambdas` distils the λ_i from a teacher, DDIM with
`scale` times as many steps on a grid that refines the student's (each student step split into `scale`
equal steps in t), on one batch of initial noises: going forward through the student's steps, λ_i is
the least-squares fit over the whole batch of the student's state at t_{i+1} to the teacher's, and the
student continues from its corrected state. Sampling with the fitted λ costs the same evaluations as
DDIM."""
from __future__ import annotations

import torch

from optrepro.diffusion.guidance import CFG
from optrepro.diffusion.process import Process
from optrepro.diffusion.samplers import Guided, sample
from optrepro.errors import ConfigError


def refine(times: torch.Tensor, scale: int) -> torch.Tensor:
    """`times` with every interval split into `scale` equal steps: times[i] is the result's [i * scale]."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"the teacher's scale must be an integer >= 1, got {scale!r}")
    parts = [times[i] + (times[i + 1] - times[i]) * torch.arange(scale, dtype=times.dtype) / scale
             for i in range(len(times) - 1)]
    return torch.cat(parts + [times[-1:]])


def _run(model, process, param, labels, times, x, lambdas=None, teacher=None):
    """The student's pass; with `teacher` (its states at the student's times), fits λ on the way."""
    g = Guided(model, process, param, CFG(1.0), labels)
    g.rule.start(len(labels), len(times) - 1)
    lam = torch.zeros(len(times) - 1, dtype=torch.float64) if lambdas is None else lambdas
    prev = None
    for i in range(len(times) - 1):
        t, tn = float(times[i]), float(times[i + 1])
        x0, eps = g(x, t, i)
        x = float(process.alpha(tn)) * x0 + float(process.sigma(tn)) * eps
        if prev is not None:
            d = float(process.alpha(tn)) * (x0 - prev)
            if teacher is not None:
                r = teacher[i + 1] - x
                den = float((d.double() ** 2).sum())
                lam[i] = float((d.double() * r.double()).sum()) / den if den > 0 else 0.0
            x = x + float(lam[i]) * d
        prev = x0
    return x, lam, g.evals / len(labels)


def fit_lambdas(model, process: Process, param: str, labels: torch.Tensor, times: torch.Tensor, x_init: torch.Tensor,
                scale: int = 10) -> tuple[torch.Tensor, dict]:
    """λ_i (one per step, λ_0 = 0) distilled on the batch x_init from DDIM with `scale` x the steps; also
    the teacher's and the fitted student's mean squared distance on that batch."""
    fine = refine(times, scale)
    xs, x = [x_init], x_init
    g = Guided(model, process, param, CFG(1.0), labels)
    g.rule.start(len(labels), len(fine) - 1)
    for i in range(len(fine) - 1):
        x0, eps = g(x, float(fine[i]), i)
        x = float(process.alpha(fine[i + 1])) * x0 + float(process.sigma(fine[i + 1])) * eps
        xs.append(x)
    teacher = [xs[i * scale] for i in range(len(times))]
    student, lam, _ = _run(model, process, param, labels, times, x_init, teacher=teacher)
    return lam, {"fit_mse": float(((student - teacher[-1]) ** 2).mean())}


def dode_sample(model, process: Process, param: str, labels: torch.Tensor, times: torch.Tensor, x_init: torch.Tensor,
                lambdas: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """D-DDIM from x_init with fitted λ (λ = 0: plain DDIM); returns (x, {"nfe": evaluations per sample})."""
    if len(lambdas) != len(times) - 1:
        raise ConfigError(f"{len(lambdas)} λ for {len(times) - 1} steps")
    x, _, nfe = _run(model, process, param, labels, times, x_init, lambdas=lambdas)
    return x, {"nfe": nfe}


def ddim(model, process: Process, param: str, labels: torch.Tensor, times: torch.Tensor, x_init: torch.Tensor):
    """Plain DDIM through common.diffusion.samplers.sample (the reference D-DDIM with λ = 0 must equal)."""
    return sample(model, process, param, CFG(1.0), times, labels, torch.Generator(), "ddim", x_init=x_init,
                  dtype=x_init.dtype)
