"""jacobian_descent_2024's aggregators against torchjd 0.18.0 (the authors' library) and against the
defining properties: UPGrad's projections solve their quadratic programs (KKT conditions), conflict
with no objective, and reduce to the mean when nothing conflicts. The experiment's per-example
Jacobian against one backward pass per example."""
import numpy as np
import pytest
import torch
from torchjd._linalg._dual_cone import QuadprogProjector
from torchjd.aggregation import MGDA as RefMGDA
from torchjd.aggregation import Mean as RefMean
from torchjd.aggregation import PCGrad as RefPCGrad
from torchjd.aggregation import UPGrad as RefUPGrad

from optrepro.papers.jacobian_descent_2024 import experiment as E
from optrepro.papers.jacobian_descent_2024.method import (MGDA, PCGrad, UPGrad, Mean, gram_root, make_aggregator,
                                                         project_dual)

pytestmark = pytest.mark.reference
SHAPES = [(2, 5), (5, 3), (8, 20), (32, 100), (40, 10)]


def _jacobian(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(m, n, generator=g, dtype=torch.float64)
    J[0] *= -3.0  # a large, conflicting row
    return J


@pytest.mark.parametrize("m,n", SHAPES)
def test_aggregators_equal_torchjd(m, n):
    J = _jacobian(m, n, seed=m * 100 + n)
    close = lambda a, b: torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)  # noqa: E731
    close(UPGrad()(J), RefUPGrad()(J))
    close(MGDA()(J), RefMGDA()(J))
    close(MGDA(epsilon=1e-6, max_iters=500)(J), RefMGDA(epsilon=1e-6, max_iters=500)(J))
    close(Mean()(J), RefMean()(J))
    if m <= n:  # G is definite: the unregularized quadratic programs have unique solutions
        close(UPGrad(reg_eps=0.0)(J), RefUPGrad(projector=QuadprogProjector(reg_eps=0.0))(J))
    torch.manual_seed(7)
    ours = PCGrad()(J)
    torch.manual_seed(7)
    close(ours, RefPCGrad()(J))


def test_pcgrad_with_a_generator_is_reproducible():
    J = _jacobian(8, 20, seed=1)
    a = PCGrad(torch.Generator().manual_seed(3))(J)
    b = PCGrad(torch.Generator().manual_seed(3))(J)
    assert torch.equal(a, b)


@pytest.mark.parametrize("m,n", [(5, 3), (8, 20), (32, 100)])
def test_each_projection_solves_its_quadratic_program(m, n):
    """v* = argmin_{v >= u} v^T G v: v* >= u, gradient 2 G v* >= 0, complementary slackness."""
    J = _jacobian(m, n, seed=2)
    G = (J @ J.T).numpy()
    R = gram_root(G)
    np.testing.assert_allclose(R.T @ R, G, atol=1e-10, rtol=1e-10)
    for i in range(m):
        u = np.eye(m)[i]
        v = project_dual(u, R)
        grad = G @ v
        assert (v >= u - 1e-12).all()
        assert (grad >= -1e-9).all()
        assert np.abs((v - u) * grad).max() < 1e-9


@pytest.mark.parametrize("m,n", [(5, 3), (8, 20), (32, 100)])
def test_upgrad_conflicts_with_no_objective(m, n):
    J = _jacobian(m, n, seed=3)
    assert (J @ UPGrad(reg_eps=0.0)(J) >= -1e-9).all()
    assert (J @ Mean()(J) < 0).any()  # the mean does conflict here: the property is not vacuous


def test_upgrad_is_the_mean_when_no_rows_conflict():
    g = torch.Generator().manual_seed(4)
    J = torch.rand(6, 9, generator=g, dtype=torch.float64) + 0.1  # positive entries: every <g_i, g_j> > 0
    torch.testing.assert_close(UPGrad(reg_eps=0.0)(J), J.mean(0), atol=1e-12, rtol=1e-10)


def test_aggregators_are_scale_equivariant():
    J = _jacobian(8, 20, seed=5)
    for agg in (UPGrad(), MGDA(), Mean()):
        torch.testing.assert_close(agg(3.0 * J), 3.0 * agg(J), atol=1e-10, rtol=1e-8)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        UPGrad()(torch.zeros(3))
    with pytest.raises(ValueError, match="unknown aggregator"):
        make_aggregator("nash")
    with pytest.raises(ValueError, match="reg_eps"):
        UPGrad(reg_eps=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        MGDA(epsilon=0.0)


def test_per_example_jacobian_is_one_backward_per_example():
    from optrepro.models.vision import MLP
    torch.manual_seed(0)
    model = MLP(64, 10, width=8, depth=1)
    x, y = torch.randn(5, 64), torch.randint(10, (5,))
    params = {k: v.detach() for k, v in model.named_parameters()}
    J = E.per_example_jacobian(model, params, x, y)
    for i in range(5):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        row = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(J[i], row, atol=1e-6, rtol=1e-5)
