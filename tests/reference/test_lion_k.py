"""lion_k_2023: Lion-K with K = l1 against lion-pytorch 0.2.5 at every step, the other K against the
update written out here, and the experiment's reference solutions against their optimality
conditions (so the claims compare Lion-K with the right answer)."""
import pytest
import torch
from lion_pytorch import Lion as RefLion

from optrepro.papers.lion_k_2023 import experiment as E
from optrepro.papers.lion_k_2023.method import LionK, grad_k
from tests.reference.lockstep import lockstep

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_k_l1_is_lion_pytorch_at_every_step(wd):
    lockstep(lambda p: LionK(p, lr=0.01, betas=(0.9, 0.99), weight_decay=wd, k="l1"),
             lambda p: RefLion(p, lr=0.01, betas=(0.9, 0.99), weight_decay=wd), atol=1e-12, rtol=1e-10)


class LiteralLionK:
    def __init__(self, params, lr, betas, weight_decay, k):
        self.params, self.lr, self.b, self.wd, self.k = params, lr, betas, weight_decay, k
        self.m = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self):
        b1, b2 = self.b
        for i, p in enumerate(self.params):
            g = p.grad
            mt = b1 * self.m[i] - (1 - b1) * g
            if self.k == "l2":
                d = mt / mt.norm()
            else:
                d = mt
            p.copy_(p + self.lr * (d - self.wd * p))
            self.m[i] = b2 * self.m[i] - (1 - b2) * g


@pytest.mark.parametrize("k", ["l2", "quadratic"])
def test_other_k_equal_the_update_written_out(k):
    lockstep(lambda p: LionK(p, lr=0.01, betas=(0.8, 0.95), weight_decay=0.3, k=k),
             lambda p: LiteralLionK(p, lr=0.01, betas=(0.8, 0.95), weight_decay=0.3, k=k), zeros=False,
             atol=1e-12, rtol=1e-10)


def test_grad_k_at_zero_and_bad_k():
    assert torch.equal(grad_k("l2", torch.zeros(3)), torch.zeros(3))
    with pytest.raises(ValueError, match="unknown K"):
        LionK([torch.zeros(2)], k="linf")
    with pytest.raises(ValueError, match="unknown K"):
        grad_k("linf", torch.zeros(2))


def _grad(A, b, x):
    return A.T @ (A @ x - b) / A.shape[0]


@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0])
def test_box_solution_satisfies_kkt(lam):
    A, b, _ = E.problem(200, 20, seed=3)
    x = E.reference_solution("l1", A, b, lam)
    g, r = _grad(A, b, x), 1 / lam
    assert float(x.abs().max()) <= r + 1e-12
    free = x.abs() < r - 1e-9
    if bool(free.any()):  # interior coordinates: zero gradient
        assert float(g[free].abs().max()) < 1e-9
    at_top, at_bottom = x >= r - 1e-9, x <= -r + 1e-9
    assert bool((g[at_top] <= 1e-9).all()) and bool((g[at_bottom] >= -1e-9).all())  # pushing outward
    assert int((at_top | at_bottom).sum()) > 0                     # the constraint is active


def test_ball_solution_satisfies_kkt():
    A, b, _ = E.problem(200, 20, seed=4)
    lam = 0.2
    x = E.reference_solution("l2", A, b, lam)
    assert float(x.norm()) == pytest.approx(1 / lam, rel=1e-10)
    g = _grad(A, b, x)
    mu = -float(g @ x) / float(x @ x)  # -grad f = mu x with mu >= 0
    assert mu > 0
    torch.testing.assert_close(-g, mu * x, atol=1e-9, rtol=1e-8)


def test_ridge_solution_and_the_fixed_point_of_lion_k():
    """At x* with m = -grad f(x*), one Lion-K step leaves x* in place (quadratic, l2)."""
    A, b, _ = E.problem(200, 20, seed=5)
    for k, lam in (("quadratic", 0.5), ("l2", 0.2)):
        x_star = E.reference_solution(k, A, b, lam)
        if k == "quadratic":
            torch.testing.assert_close(_grad(A, b, x_star) + lam * x_star, torch.zeros(20, dtype=torch.float64),
                                       atol=1e-12, rtol=0)
        p = torch.nn.Parameter(x_star.clone())
        opt = LionK([p], lr=0.1, betas=(0.9, 0.99), weight_decay=lam, k=k)
        opt.state[p]["m"] = -_grad(A, b, x_star)
        p.grad = _grad(A, b, x_star)
        opt.step()
        torch.testing.assert_close(p.detach(), x_star, atol=1e-10, rtol=1e-9)
