"""implicit_bias_bilevel_2022: the one-angle distillation against its closed forms: cold-start inner
gradient descent from 0 converges to the minimum-norm solution u(x); the unrolled hypergradient of a
converged cold start equals d f(u(x)) / dx written out; warm-start inner steps move w only along u(x)
(the orthogonal part is what earlier steps left); the best minimum-norm value by the grid against a
direct minimization; bad input."""
import math

import pytest
import torch

from optrepro.bilevel import inner_gd, unrolled
from optrepro.papers.implicit_bias_bilevel_2022.method import AngleDistill, init_state, run_blo

pytestmark = pytest.mark.reference


def test_cold_start_inner_solution_is_the_minimum_norm_solution():
    p = AngleDistill(seed=1)
    for x in (0.3, 2.0, -1.1):
        xt = torch.tensor([x], dtype=torch.float64)
        w = inner_gd(p, xt, torch.zeros(2, dtype=torch.float64), 100, 0.5)
        assert torch.allclose(w, torch.tensor([math.cos(x), math.sin(x)], dtype=torch.float64), atol=1e-12)
        assert torch.allclose(w, p.min_norm(xt), atol=1e-12)


def test_converged_unrolled_hypergradient_equals_the_closed_form():
    # f(u(x)) with u = (cos x, sin x): d/dx = grad_w f(u)' (-sin x, cos x), grad_w f = A'(A u - b) / n
    p = AngleDistill(seed=2)
    x = torch.tensor([0.7], dtype=torch.float64)
    hg = unrolled(p, x, torch.zeros(2, dtype=torch.float64), 60, 0.5)
    u = p.u(x)
    grad_w = p.A.T @ (p.A @ u - p.b) / len(p.b)
    want = grad_w @ torch.stack([-torch.sin(x[0]), torch.cos(x[0])])
    assert float(hg.grad[0]) == pytest.approx(float(want), rel=1e-9)


def test_warm_inner_steps_keep_the_orthogonal_component():
    p = AngleDistill(seed=3)
    x = torch.tensor([1.2], dtype=torch.float64)
    u = p.u(x)
    perp = torch.stack([-u[1], u[0]])
    w0 = torch.tensor([2.0, -3.0], dtype=torch.float64)
    w = inner_gd(p, x, w0, 5, 0.5)
    assert float(perp @ w) == pytest.approx(float(perp @ w0), abs=1e-14)  # untouched
    assert float(u @ w - 1) == pytest.approx(float(u @ w0 - 1) * 0.5 ** 5, rel=1e-12)  # contracts along u


def test_best_min_norm_value_against_a_direct_minimization():
    p = AngleDistill(seed=4)
    best = math.inf
    for start in range(7):  # L-BFGS on the smooth f(u(x)) from several angles
        th = torch.tensor(float(start), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([th], max_iter=200, tolerance_grad=1e-14, tolerance_change=1e-16)

        def closure():
            opt.zero_grad()
            loss = p.f(None, torch.stack([torch.cos(th), torch.sin(th)]))
            loss.backward()
            return loss
        opt.step(closure)
        best = min(best, float(closure().detach()))
    assert p.best_min_norm() == pytest.approx(best, abs=1e-8)


def test_bad_mode_is_a_value_error():
    with pytest.raises(ValueError, match="mode"):
        run_blo(AngleDistill(), "lukewarm", 1, 0.5, init_state(0.1), range(1))
