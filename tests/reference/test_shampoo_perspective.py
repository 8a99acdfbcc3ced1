"""shampoo_perspective_2024: the Kronecker-approximation pieces against their definitions: the
rearrangement sends X ⊗ Y to vec(X) vec(Y)'; an exact Kronecker product is recovered exactly by the
optimal approximation and up to scale by both partial-trace approximations; for M = Σ vec(G) vec(G)' the
partial traces are Σ G G' and Σ G' G (Shampoo's statistics); power iteration converges to the SVD
answer; the experiment's matrices are symmetric PSD and its Adagrad matrix is the per-example sum."""
import pytest
import torch

from optrepro.papers.shampoo_perspective_2024 import experiment as ex
from optrepro.papers.shampoo_perspective_2024 import method

pytestmark = pytest.mark.reference


def _spd(k, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(k, k, generator=g, dtype=torch.float64)
    return A @ A.T + 0.1 * torch.eye(k, dtype=torch.float64)


def test_rearrangement_sends_a_kronecker_product_to_an_outer_product():
    X, Y = _spd(3, 0), _spd(4, 1)
    torch.testing.assert_close(method.rearrange(torch.kron(X, Y), 3, 4), torch.outer(X.reshape(-1), Y.reshape(-1)))


@pytest.mark.parametrize("kind", method.KINDS)
def test_exact_kronecker_products_are_recovered(kind):
    X, Y = _spd(3, 2), _spd(5, 3)
    M = torch.kron(X, Y)
    err = method.scaled_error(M, method.approximation(M, 3, 5, kind))
    if kind == "shampoo":  # (L ⊗ R)^(1/2) ∝ X^(1/2) ⊗ Y^(1/2): exact only up to the square root
        assert err > 1e-3
    else:
        assert err < 1e-12


def test_partial_traces_of_the_gradient_covariance_are_shampoos_statistics():
    g = torch.Generator().manual_seed(4)
    Gs = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    M = sum(torch.outer(G.reshape(-1), G.reshape(-1)) for G in Gs)
    L, R = method.partial_traces(M, 3, 5)
    torch.testing.assert_close(L, sum(G @ G.T for G in Gs))
    torch.testing.assert_close(R, sum(G.T @ G for G in Gs))


def test_power_iteration_converges_to_the_optimal_kronecker_factors():
    g = torch.Generator().manual_seed(5)
    Gs = torch.randn(20, 3, 4, generator=g, dtype=torch.float64)
    M = sum(torch.outer(G.reshape(-1), G.reshape(-1)) for G in Gs)
    X, Y = method.optimal_kron(M, 3, 4)
    Xp, Yp = method.power_iteration_kron(M, 3, 4, steps=200)
    torch.testing.assert_close(torch.kron(Xp, Yp), torch.kron(X, Y), rtol=1e-9, atol=1e-10)
    best = method.scaled_error(M, torch.kron(X, Y))
    for kind in ("one_step", "shampoo"):  # nothing Kronecker beats the optimum
        assert method.scaled_error(M, method.approximation(M, 3, 4, kind)) >= best - 1e-12


def test_experiment_matrices_are_symmetric_psd_and_adagrad_is_the_per_example_sum():
    cfg = ex.KronConfig(width=4, n_examples=24, train_steps=3, seed=1)
    gn, ada = ex.matrices(cfg)
    for M in (gn, ada):
        assert M.shape == (4 * 32, 4 * 32)
        torch.testing.assert_close(M, M.T)
        assert float(torch.linalg.eigvalsh(M).min()) > -1e-10
    assert torch.linalg.matrix_rank(ada) <= 24  # a sum of 24 outer products
    assert torch.linalg.matrix_rank(gn) <= 24 * 9  # softmax Hessians have rank 9 of 10


def test_bad_kind_is_named():
    with pytest.raises(ValueError, match="kind"):
        method.approximation(_spd(4, 0), 2, 2, "kfac")
