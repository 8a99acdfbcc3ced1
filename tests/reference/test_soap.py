"""common.curvature.soap: SOAP against pytorch-optimizer 4.1.0's SOAP (the authors' defaults) given the
same gradients, every step: in float64 between basis refreshes to 1e-12 and across refreshes to the
reference's own precision (it computes the QR in float32); the rotation written out for a matrix
(Q_L^T G Q_R) and Adam recovered when every dimension is left unrotated; bad input."""
import pytest
import torch
from pytorch_optimizer import SOAP as RefSOAP

from optrepro.curvature.soap import SOAP, _to_basis
from tests.reference.lockstep import lockstep

pytestmark = pytest.mark.reference

SHAPES = [(9, 6), (4, 3, 5), (7,)]


def _run(every, tol, steps=12, wd=1e-2, max_dim=10000):
    """Ours and the reference on the same gradients (tests/reference/lockstep), compared after every step."""
    lockstep(lambda ps: SOAP(ps, lr=3e-3, betas=(0.95, 0.95), weight_decay=wd, precondition_every=every,
                             max_precondition_dim=max_dim),
             lambda ps: RefSOAP(ps, lr=3e-3, betas=(0.95, 0.95), weight_decay=wd, precondition_frequency=every,
                                max_precondition_dim=max_dim),
             shapes=SHAPES, steps=steps, atol=tol, rtol=tol, zeros=False)


def test_steps_equal_the_reference_between_refreshes():
    _run(every=1000, tol=1e-12)


def test_steps_match_the_reference_across_refreshes():
    # the reference casts the power iteration's QR to float32; ours keeps float64
    _run(every=3, tol=1e-7)


def test_dimensions_above_the_limit_are_left_unrotated_as_in_the_reference():
    _run(every=3, tol=1e-7, max_dim=5)


def test_rotation_of_a_matrix_is_ql_t_g_qr():
    g = torch.Generator().manual_seed(2)
    G = torch.randn(5, 4, generator=g, dtype=torch.float64)
    QL = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0]
    QR = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))[0]
    assert torch.allclose(_to_basis(G, [QL, QR]), QL.T @ G @ QR)
    assert torch.allclose(_to_basis(_to_basis(G, [QL, QR]), [QL, QR], inverse=True), G)
    assert torch.allclose(_to_basis(G, [None, QR]), G @ QR)


def test_without_rotation_it_is_adam_one_step_late():
    # 1-D parameters are never rotated: SOAP is then AdamW whose first gradient only initializes the bases
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    q = torch.nn.Parameter(p.detach().clone())
    soap = SOAP([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    adam = torch.optim.Adam([q], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    gen = torch.Generator().manual_seed(3)
    first = torch.randn(3, generator=gen, dtype=torch.float64)
    p.grad = first
    soap.step()
    assert torch.equal(p.detach(), q.detach())  # the first step does not move
    for _ in range(4):
        gr = torch.randn(3, generator=gen, dtype=torch.float64)
        p.grad, q.grad = gr.clone(), gr.clone()
        soap.step()
        adam.step()
    assert torch.allclose(p.detach(), q.detach(), rtol=0, atol=1e-6)  # torch's Adam adds eps outside the correction


@pytest.mark.parametrize("kw,match", [({"lr": -1.0}, "lr"), ({"shampoo_beta": 1.5}, "shampoo_beta"),
                                      ({"precondition_every": 0}, "precondition_every"), ({"betas": (0.9,)}, "betas")])
def test_bad_arguments_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        SOAP([torch.nn.Parameter(torch.zeros(2, 2))], **kw)
