"""Hypergradients against closed forms and against each other; bilevel algorithms against the
closed-form optimum; the failure modes (indefinite Hessian, unsolved inner problem, divergent
Neumann series) raise clear errors or are recorded."""
import pytest
import torch

from optrepro.bilevel import (ALGORITHMS, IndefiniteHessian, NotConverged, custom_root, implicit, inner_gd,
                            penalty_grads, run, saved_bytes, unrolled)
from optrepro.bilevel.problems import HyperClean, L2Reg, NonUnique, Quadratic

pytestmark = pytest.mark.reference
D = torch.float64


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("seed,cond", [(0, 10.0), (1, 100.0)])
def test_every_hypergradient_matches_closed_form_on_quadratic(seed, cond):
    p = Quadratic(seed=seed, cond=cond)
    x = torch.randn(p.dx, dtype=D, generator=torch.Generator().manual_seed(seed))
    exact, ys = p.hypergrad_exact(x), p.y_star(x)
    alpha = 1.0 / p.L
    assert rel(implicit(p, x, ys, solver="cg", iters=50, tol=1e-14).grad, exact) < 1e-10
    assert rel(implicit(p, x, ys, solver="dense").grad, exact) < 1e-10
    assert rel(implicit(p, x, ys, solver="neumann", terms=int(40 * cond), alpha=alpha).grad, exact) < 1e-8
    h = unrolled(p, x, torch.zeros(p.dy, dtype=D), int(40 * cond), alpha)
    assert rel(h.grad, exact) < 1e-8 and h.inner_residual < 1e-8
    # first-order penalty: O(1/lam) bias, so the error shrinks 10x when lam grows 10x
    errs = []
    for lam in (1e2, 1e3, 1e4):
        y = torch.linalg.solve(lam * p.A + torch.eye(p.dy, dtype=D), lam * p.B @ x + p.c)  # argmin f + lam g
        errs.append(rel(penalty_grads(p, x, y, ys, lam)[0], exact))
    assert errs[2] < 1e-2 and errs[1] / errs[2] > 5 and errs[0] / errs[1] > 5


def test_neumann_error_decreases_with_terms_and_unrolled_with_steps():
    p = Quadratic(seed=2, cond=20.0)
    x = torch.ones(p.dx, dtype=D)
    exact, ys = p.hypergrad_exact(x), p.y_star(x)
    ne = [rel(implicit(p, x, ys, solver="neumann", terms=k, alpha=1 / p.L).grad, exact) for k in (0, 10, 100, 400)]
    ue = [rel(unrolled(p, x, torch.zeros(p.dy, dtype=D), k, 1 / p.L).grad, exact) for k in (10, 100, 400)]
    assert all(a > b for a, b in zip(ne, ne[1:])), ne
    assert all(a > b for a, b in zip(ue, ue[1:])), ue


def test_custom_root_ridge_matches_closed_form_and_torchopt():
    g = torch.Generator().manual_seed(0)
    X, t = torch.randn(30, 6, dtype=D, generator=g), torch.randn(30, dtype=D, generator=g)

    def F(w, lam):  # optimality condition of ridge regression: gradient of the objective
        return X.T @ (X @ w - t) + lam * w

    @custom_root(F, solve="cg", iters=50, tol=1e-14)
    def ridge_gd(w0, lam):  # a plain iterative solver, not differentiated through
        w = w0
        for _ in range(3000):
            w = w - 0.01 * F(w, lam)
        return w

    lam = torch.tensor(0.7, dtype=D, requires_grad=True)
    ridge_gd(torch.zeros(6, dtype=D), lam).square().sum().backward()
    lam2 = lam.detach().clone().requires_grad_()
    torch.linalg.solve(X.T @ X + lam2 * torch.eye(6, dtype=D), X.T @ t).square().sum().backward()
    assert abs(float(lam.grad - lam2.grad)) < 1e-9 * abs(float(lam2.grad))
    assert ridge_gd.info["optimality"] < 1e-8 and ridge_gd.info["lin_residual"] < 1e-12

    torchopt = pytest.importorskip("torchopt")
    import warnings
    from torchopt.diff.implicit import custom_root as to_root

    @to_root(lambda w, lam: F(w, lam), argnums=1, solve=torchopt.linear_solve.solve_cg())
    def ridge_to(w0, lam):
        return torch.linalg.solve(X.T @ X + lam * torch.eye(6, dtype=D), X.T @ t)

    lam3 = lam.detach().clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ridge_to(torch.zeros(6, dtype=D), lam3).square().sum().backward()
    assert abs(float(lam.grad - lam3.grad)) < 1e-9 * abs(float(lam3.grad))


@pytest.mark.parametrize("solve", ["cg", "dense", "normal_cg"])
def test_custom_root_logistic_regression_matches_long_unrolling(solve):
    """Per-weight L2 on digits: the implicit gradient (custom_root around a black-box solver)
    equals reverse mode through 2000 GD steps started at the solution."""
    p = L2Reg(n_train=60, n_val=60, seed=0, init_log_l2=-1.0)
    x = p.x0()
    y_star = inner_gd(p, x, p.y0(), 2000, 0.3)
    assert p.inner_residual(x, y_star) < 1e-9

    def F(y, x):
        with torch.enable_grad():
            return torch.autograd.grad(p.g(x, y), y, create_graph=True)[0]

    root = custom_root(F, solve=solve, iters=500, tol=1e-13)(lambda y0, x: y_star)
    x_ = x.clone().requires_grad_()
    p.f(x_, root(y_star, x_)).backward()
    ref = unrolled(p, x, y_star, 2000, 0.3).grad
    assert rel(x_.grad, ref) < 1e-6
    assert rel(implicit(p, x, y_star, solver="cg", iters=500, tol=1e-13).grad, ref) < 1e-6


def test_implicit_matches_unrolling_on_a_small_network():
    """Hyper-cleaning with a tanh MLP lower level (nonconvex, but strongly convex near y* thanks
    to mu): implicit CG equals reverse mode through many GD steps from y*."""
    p = HyperClean(model="mlp", n_train=80, n_val=80, hidden=8, mu=5e-2, seed=1)
    x = torch.randn(p.dx, dtype=D, generator=torch.Generator().manual_seed(3))
    y = inner_gd(p, x, p.y0(), 10000, 0.5, tol=1e-11)
    assert p.inner_residual(x, y) < 1e-9
    ref = unrolled(p, x, y, 3000, 0.5).grad
    assert rel(implicit(p, x, y, solver="cg", iters=300, tol=1e-13).grad, ref) < 1e-5


def test_cg_on_indefinite_hessian_raises_and_damping_is_documented_fallback():
    p = Quadratic(seed=0)
    ev, Q = torch.linalg.eigh(p.A)
    p.A = Q @ torch.diag(ev - ev[2]) @ Q.T - 0.5 * torch.eye(p.dy, dtype=D)  # three negative eigenvalues
    x = torch.ones(p.dx, dtype=D)
    with pytest.raises(IndefiniteHessian, match="not positive definite.*damping"):
        implicit(p, x, torch.zeros(p.dy, dtype=D), solver="cg")
    # singular (not indefinite) Hessian of the non-unique lower level: damping gives a finite answer
    n = NonUnique()
    xs, ys = n.solution()
    h = implicit(n, xs, ys, solver="cg", damping=1e-3, iters=10)
    assert torch.isfinite(h.grad).all() and h.lin_residual < 1e-8


def test_unsolved_inner_problem_is_reported_not_silent():
    p = Quadratic(seed=0, cond=100.0)
    x = torch.ones(p.dx, dtype=D)
    y_bad = inner_gd(p, x, torch.zeros(p.dy, dtype=D), 3, 1 / p.L)
    h = implicit(p, x, y_bad)
    assert h.inner_residual > 1e-2  # recorded
    with pytest.raises(NotConverged, match=r"\|\|g_y\|\| = .* > 1.0e-06"):
        implicit(p, x, y_bad, check_tol=1e-6)

    def F(y, x):
        return p.A @ y - p.B @ x

    solver = custom_root(F, check_tol=1e-6)(lambda y0, x: y_bad)
    with pytest.raises(NotConverged, match="did not reach the root"):
        solver(y_bad, x)


def test_neumann_with_too_large_step_raises():
    p = Quadratic(seed=0, cond=10.0)
    x = torch.ones(p.dx, dtype=D)
    with pytest.raises(NotConverged, match="Lower alpha"):
        implicit(p, x, p.y_star(x), solver="neumann", terms=60, alpha=3.0 / p.L)


def test_memory_unrolled_grows_with_steps_implicit_does_not():
    p = L2Reg(n_train=60, n_val=60, seed=0)
    x, y0 = p.x0(), p.y0()
    mem = []
    for k in (10, 20, 40):
        with saved_bytes() as m:
            unrolled(p, x, y0, k, 0.5)
        mem.append(m["bytes"])
    d1, d2 = mem[1] - mem[0], mem[2] - mem[1]  # linear in steps: 20 more steps cost twice 10 more
    assert d1 > 0 and abs(d2 / d1 - 2.0) < 0.1, mem
    with saved_bytes() as m:
        implicit(p, x, y0, solver="cg", iters=20)
    assert m["bytes"] < mem[0]


# (hyperparameters, outer iterations, relative tolerance on x): F's Hessian in x has eigenvalues
# 1.2..7.4 (rho = 1), g's 1..10. Penalty methods carry an O(1/lam) bias; v_pbgd's step is
# limited to 1 / (gamma L_g), so it needs more iterations.
ALGO_CASES = {
    "aid_cg": (dict(outer_lr=0.13, inner_lr=0.09, inner_steps=20, cg_iters=10), 300, 1e-6),
    "stocbio": (dict(outer_lr=0.13, inner_lr=0.09, inner_steps=20, neumann_terms=100), 300, 1e-4),
    "itd": (dict(outer_lr=0.13, inner_lr=0.09, inner_steps=100), 200, 1e-4),
    "ttsa": (dict(outer_lr=0.02, inner_lr=0.09, neumann_terms=100), 300, 2e-3),
    "ma_soba": (dict(outer_lr=0.1, inner_lr=0.09, nu=0.09, avg=0.5), 3000, 1e-3),
    "f2sa": (dict(outer_lr=0.13, inner_lr=0.09, inner_steps=30, lam0=10.0, lam_step=20.0, lam_max=1e4), 300, 1e-3),
    "v_pbgd": (dict(outer_lr=0.003, inner_lr=0.09, inner_steps=10, gamma=30.0), 3000, 2e-2),
    "bo_rep": (dict(outer_lr=0.003, inner_lr=0.09, inner_steps=10, init_steps=100, period=2, nu=0.09, beta=0.5),
               3000, 1e-3),
    "maid": (dict(step=1.0), 60, 1e-4),
    "inexact_gd": (dict(step=0.13), 300, 1e-4),
}


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_algorithm_reaches_the_closed_form_optimum_of_a_quadratic(algo):
    assert set(ALGO_CASES) == set(ALGORITHMS)
    hp, iters, tol = ALGO_CASES[algo]
    p = Quadratic(seed=0, cond=10.0, rho=1.0)
    p.x0 = lambda: torch.zeros(p.dx, dtype=D)
    p.y0 = lambda: torch.zeros(p.dy, dtype=D)
    r = run(p, algo, 10**8, hp, max_outer=iters)
    assert rel(r["x"], p.x_opt()) < tol, (algo, rel(r["x"], p.x_opt()))
    assert r["outer_iters"] == iters and r["calls"] == r["grad_calls"] + r["hvp_calls"] > 0


def test_bo_rep_neumann_estimator_reaches_the_optimum():
    hp, iters, tol = ALGO_CASES["bo_rep"]
    p = Quadratic(seed=0, cond=10.0, rho=1.0)
    p.x0 = lambda: torch.zeros(p.dx, dtype=D)
    p.y0 = lambda: torch.zeros(p.dy, dtype=D)
    r = run(p, "bo_rep", 10**8, {**hp, "estimator": "neumann", "neumann_terms": 100}, max_outer=iters)
    assert rel(r["x"], p.x_opt()) < tol


def test_v_pbgd_solves_the_non_unique_lower_level_problem():
    """The lower level's solution set is a line; V-PBGD reaches the optimistic optimum (closed
    form) within its O(1/gamma) bias, where CG on g_yy (rank 1) would need damping."""
    n = NonUnique()
    n.x0 = lambda: torch.zeros(1, dtype=D)
    n.y0 = lambda: torch.zeros(2, dtype=D)
    xs, ys = n.solution()
    r = run(n, "v_pbgd", 10**8, dict(outer_lr=0.5 / 100, inner_lr=0.2, inner_steps=10, gamma=100.0), max_outer=3000)
    assert abs(float(r["x"] - xs)) < 2e-3 and float((r["y"] - ys).norm()) < 2e-3
    assert abs(n.value(r["x"], r["y"]) - n.optimal_value()) < 1e-3


def test_run_rejects_unknown_algorithm():
    with pytest.raises(ValueError, match="unknown.*valid"):
        run(Quadratic(), "aid", 10, {})


@pytest.mark.parametrize("solve", ["normal_cg", "dense"])
def test_custom_root_non_symmetric_root_matches_closed_form(solve):
    """F(y, theta) = A y - theta with A non-symmetric (a root, not an argmin): the VJP of
    y* = A^{-1} theta is A^{-T} w; plain CG would assume symmetry, normal_cg does not."""
    g = torch.Generator().manual_seed(4)
    A = torch.randn(6, 6, dtype=D, generator=g) + 4 * torch.eye(6, dtype=D)
    w = torch.randn(6, dtype=D, generator=g)

    @custom_root(lambda y, th: A @ y - th, solve=solve, iters=200, tol=1e-14)
    def lin(y0, th):
        return torch.linalg.solve(A, th)

    th = torch.randn(6, dtype=D, generator=g, requires_grad=True)
    (lin(torch.zeros(6, dtype=D), th) @ w).backward()
    assert rel(th.grad, torch.linalg.solve(A.T, w)) < 1e-10
