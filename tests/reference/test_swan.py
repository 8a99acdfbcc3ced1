"""SWAN (papers.swan_2024.method) against its equations and closed forms:
- GradNorm: every row of the result has mean 0 and (population) std 1 over the inputs;
- GradWhitening by Newton-Schulz equals the closed form (G G^T)^{-1/2} G = U V^T from the SVD, for
  wide and tall matrices (on the smaller side's Gram);
- a step on a tiny GPT-2: hidden matrices W <- W(1 - lr wd) - lr D with D the rescaled polar factor
  of GradNorm(G), oriented (out, in) whatever the layer stores; the embeddings, the tied output
  layer and the vectors step exactly as torch.optim.AdamW;
- the ablations switch one operator off."""
import pytest
import torch

from optrepro.models import tiny_gpt
from optrepro.optim.layers import layer_groups, layer_roles
from papers.swan_2024.method import SWAN, grad_norm, grad_whiten, swan_direction
from tests.reference.lockstep import layerwise_lockstep

pytestmark = pytest.mark.reference

LR, WD, BETAS = 1e-2, 0.1, (0.9, 0.95)


def _polar(g):
    """U V^T over the nonzero singular values (GradNorm's centred rows sum to zero, so a square
    G~ is singular: its polar factor on the range, the pseudo-inverse square root's)."""
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    keep = s > 1e-9 * s[0]
    return u[:, keep] @ vh[keep]


def test_whitening_a_centred_square_matrix_leaves_its_null_direction_out():
    g = grad_norm(torch.randn(8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))
    assert torch.linalg.matrix_rank(g) == 7
    torch.testing.assert_close(grad_whiten(g, 40), _polar(g), atol=1e-7, rtol=0)


def test_gradnorm_standardizes_rows():
    g = torch.randn(7, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3 + 2
    x = grad_norm(g)
    torch.testing.assert_close(x.mean(dim=1), torch.zeros(7, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(x.std(dim=1, unbiased=False), torch.ones(7, dtype=torch.float64), atol=1e-7, rtol=0)


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (8, 8)])
def test_whitening_is_the_polar_factor(shape):
    g = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(grad_whiten(g, 40), _polar(g), atol=1e-8, rtol=0)
    if shape[0] <= shape[1]:  # the literal (G G^T)^{-1/2} G by eigendecomposition
        w, q = torch.linalg.eigh(g @ g.T)
        torch.testing.assert_close(grad_whiten(g, 40), q @ torch.diag(w ** -0.5) @ q.T @ g, atol=1e-8, rtol=0)


def _loss(model, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 23, (3, 8), generator=g)
    return torch.nn.functional.cross_entropy(model(x).flatten(0, 1), torch.randint(0, 23, (24,), generator=g))


@pytest.mark.parametrize("normalize,whiten", [(True, True), (True, False), (False, True)])
def test_steps_are_the_literal_equations(normalize, whiten):
    torch.manual_seed(0)
    m = tiny_gpt(23, 8, 16, 1, 2, "gpt2").double()
    opt = SWAN(layer_groups(m), lr=LR, betas=BETAS, weight_decay=WD, normalize=normalize, whiten=whiten,
               ns_steps=30)

    def literal(name, role, in_dim, g, w):
        g = g if in_dim == 1 else g.T  # (out, in)
        if normalize:
            c = g - g.mean(dim=1, keepdim=True)
            g = c / (torch.sqrt((c ** 2).mean(dim=1, keepdim=True)) + 1e-8)
        if whiten:
            d = _polar(g)
            g = d * torch.linalg.matrix_norm(g) / torch.linalg.matrix_norm(d)
        return w * (1 - LR * WD) - LR * (g if in_dim == 1 else g.T)

    layerwise_lockstep(m, opt, 3, _loss, literal, ("output", "embedding", "vector"),
                       dict(lr=LR, betas=BETAS, eps=1e-8, weight_decay=WD), rtol=1e-7, atol=1e-9)
    roles = layer_roles(m)
    assert all(not s for p, s in opt.state.items() if roles[id(p)][0] == "matrix")  # stateless


def test_half_precision_is_whitened_in_float32():
    g = torch.randn(4, 6, generator=torch.Generator().manual_seed(3)).bfloat16()
    d = swan_direction(g)
    assert d.dtype == torch.bfloat16
    torch.testing.assert_close(d.float(), swan_direction(g.float()).bfloat16().float())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="ns_steps"):
        SWAN([torch.nn.Parameter(torch.zeros(2, 2))], ns_steps=0)


def test_convolution_kernels_are_whitened_as_out_by_in_times_kernel_matrices():
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).double()
    w0 = net[0].weight.detach().clone()
    opt = SWAN(layer_groups(net), lr=LR, ns_steps=40)
    x = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net(x).square().mean().backward()
    g = net[0].weight.grad.detach().reshape(3, -1).clone()
    opt.step()
    c = g - g.mean(dim=1, keepdim=True)
    gn = c / (c.square().mean(dim=1, keepdim=True).sqrt() + 1e-8)
    d = _polar(gn)
    d = d * torch.linalg.matrix_norm(gn) / torch.linalg.matrix_norm(d)
    torch.testing.assert_close(net[0].weight.detach(), w0 - LR * d.view_as(w0), rtol=1e-7, atol=1e-9)
