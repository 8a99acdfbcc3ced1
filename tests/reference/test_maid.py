"""MAID (common.bilevel.inexact): the a posteriori error bound holds against the exact
hypergradient (closed form on the quadratic, a dense solve at a converged inner point on per-weight
L2), its constants are upper bounds of what they claim, and the line search only accepts steps on
which the true upper objective decreases."""
import math

import pytest
import torch

from optrepro.bilevel import implicit, run
from optrepro.bilevel.inexact import error_bound, inexact_hypergrad, inner_agd
from optrepro.bilevel.problems import L2Reg, Quadratic

pytestmark = pytest.mark.reference
D = torch.float64


def _l2reg(per_weight=True):
    return L2Reg(n_train=60, n_val=60, init_log_l2=-2.0, l2_floor=0.01, per_weight=per_weight)


def test_inner_agd_certifies_distance_to_the_solution():
    p = Quadratic(seed=3, cond=50.0)
    x = torch.randn(p.dx, dtype=D, generator=torch.Generator().manual_seed(0))
    for eps in (1e-1, 1e-4, 1e-8):
        y, dist, steps = inner_agd(p, x, torch.zeros(p.dy, dtype=D), eps)
        assert dist <= eps and float((y - p.y_star(x)).norm()) <= dist
    # accelerated: ~sqrt(cond) log(1/eps) steps, far below plain GD's cond * log(1/eps)
    assert steps < 0.5 * 50.0 * math.log(1e8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_holds_and_is_tight_on_quadratic(seed):
    p = Quadratic(seed=seed, cond=20.0)
    x = torch.randn(p.dx, dtype=D, generator=torch.Generator().manual_seed(seed))
    exact = p.hypergrad_exact(x)
    for eps, delta in ((1e-1, 1e-1), (1e-3, 1e-5), (1e-6, 1e-2), (1e-8, 1e-8)):
        h = inexact_hypergrad(p, x, torch.zeros(p.dy, dtype=D), eps, delta)
        err = float((h.grad - exact).norm())
        assert err <= h.bound
        assert h.bound < 1e3 * max(err, 1e-14) + 1e-12  # exact constants: not vacuous


@pytest.mark.parametrize("per_weight", [True, False])
def test_bound_holds_on_per_weight_l2(per_weight):
    p = _l2reg(per_weight)
    g = torch.Generator().manual_seed(1)
    x = p.x0() + 0.5 * torch.randn(p.dx, dtype=D, generator=g)
    ys, dist, _ = inner_agd(p, x, p.y0(), 1e-12)
    assert dist <= 1e-12
    exact = implicit(p, x, ys, solver="dense").grad
    errs = []
    for eps in (1e-1, 1e-3, 1e-5):
        h = inexact_hypergrad(p, x, p.y0(), eps, eps)
        errs.append(float((h.grad - exact).norm()))
        assert errs[-1] <= h.bound
    assert errs[0] > 10 * errs[2]  # and the error does shrink with the accuracy


def test_l2reg_constants_bound_the_local_slopes():
    """Finite-difference slopes along random directions never exceed the stated constants."""
    p = _l2reg()
    g = torch.Generator().manual_seed(2)
    x = p.x0() + 0.5 * torch.randn(p.dx, dtype=D, generator=g)
    y = p.y0() + 0.3 * torch.randn(p.dy, dtype=D, generator=g)
    c = p.bound_constants(x, y)
    hv0, jv0 = p.second_order(x, y)
    for _ in range(5):
        u, v = torch.randn(p.dy, dtype=D, generator=g), torch.randn(p.dy, dtype=D, generator=g)
        u, v = u / u.norm(), v / v.norm()
        r = 1e-3
        hv1, jv1 = p.second_order(x, y + r * u)
        assert float((hv1(v) - hv0(v)).norm()) / r <= c["L_H"]
        assert float((jv1(v) - jv0(v)).norm()) / r <= c["L_B"] * (1 + 1e-6)
        assert float(jv0(v).norm()) <= c["B_norm"] * (1 + 1e-9)
        Hv = hv0(v)
        assert c["mu"] * (1 - 1e-9) <= float(v @ Hv) <= c["L_g"] * (1 + 1e-9)
        _, fy0 = p.grad_f(x, y)
        _, fy1 = p.grad_f(x, y + r * u)
        assert float((fy1 - fy0).norm()) / r <= c["L_f"]


def test_error_bound_formula_terms():
    c = {"mu": 2.0, "L_g": 1.0, "L_f": 3.0, "L_fx": 5.0, "L_H": 7.0, "L_B": 11.0, "B_norm": 13.0}
    eps, delta, fy = 0.1, 0.01, 0.5
    q = (fy + 3.0 * eps) / 2.0
    want = 5.0 * eps + 13.0 * (delta / 2.0 + 3.0 * eps / 2.0 + 7.0 * eps * q / 2.0) + 11.0 * eps * q
    assert error_bound(c, eps, delta, fy) == pytest.approx(want, rel=1e-15)


def test_maid_true_objective_decreases_at_every_accepted_step():
    p = _l2reg()
    F = []
    state = {"y": None}

    def monitor(st):
        state["y"], _, _ = inner_agd(p, st["x"], st["y"] if state["y"] is None else state["y"], 1e-10)
        F.append(float(p.f(st["x"], state["y"])))

    r = run(p, "maid", 6000, {"step": 100.0}, monitor=monitor)
    assert r["outer_iters"] >= 3
    assert all(b <= a + 1e-10 for a, b in zip(F, F[1:])), F
    assert F[-1] < float(p.f(p.x0(), inner_agd(p, p.x0(), p.y0(), 1e-10)[0])) - 0.05


def test_maid_converges_to_the_quadratic_optimum():
    p = Quadratic(seed=0)
    p.x0, p.y0 = (lambda: torch.zeros(p.dx, dtype=D)), (lambda: torch.zeros(p.dy, dtype=D))
    r = run(p, "maid", 20000, {"step": 1.0})
    assert float((r["x"] - p.x_opt()).norm() / p.x_opt().norm()) < 1e-3
