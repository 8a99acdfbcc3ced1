"""shampoo_2020 / common.curvature.shampoo: Shampoo against pytorch-optimizer 4.1.0's ScalableShampoo
given the same gradients, every step (blocked and unblocked tensors, 1-D to 3-D, every graft, with and
without Nesterov, EMA and summed statistics, delayed preconditioning), both root methods; the pieces
against their definitions (the statistics as unfoldings, the preconditioned block as the Kronecker
product acting on vec(G), the roots vs scipy); bad input."""
import numpy as np
import pytest
import scipy.linalg
import torch
from pytorch_optimizer import ScalableShampoo
from pytorch_optimizer.optimizer.utils.graft import LayerWiseGrafting
from pytorch_optimizer.optimizer.utils.partition import PreConditionerType

from optrepro.curvature.shampoo import Shampoo, _Blocks, apply_along, inverse_root, merge_dims, mode_gram
from tests.reference.lockstep import lockstep

pytestmark = pytest.mark.reference

GRAFT = {"none": LayerWiseGrafting.NONE, "sgd": LayerWiseGrafting.SGD, "adagrad": LayerWiseGrafting.ADAGRAD,
         "rmsprop": LayerWiseGrafting.RMSPROP}


def _params(shapes):
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=torch.float64)) for s in shapes]


def _run_pair(shapes, steps=8, tol=1e-10, ours_kw=None, ref_kw=None):
    """Ours and the reference on the same gradients (tests/reference/lockstep), compared after every step."""
    ours, _ = lockstep(lambda ps: Shampoo(ps, **ours_kw), lambda ps: ScalableShampoo(ps, **ref_kw), shapes=shapes,
                       steps=steps, atol=tol, rtol=tol, zeros=False)
    return ours


SHAPES = [(20, 12), (6, 4, 3), (20,)]  # blocks of 8: 3 x 2 blocks; one unblocked 3-D tensor; a bias


@pytest.mark.parametrize("graft", ["none", "sgd", "adagrad", "rmsprop"])
@pytest.mark.parametrize("nesterov,beta2", [(True, 0.99), (False, 0.999)])
def test_steps_equal_scalable_shampoo_with_svd_roots(graft, nesterov, beta2):
    kw = dict(lr=0.05, betas=(0.9, beta2), weight_decay=1e-2, nesterov=nesterov, block_size=8)
    ours = _run_pair(
        SHAPES,
        ours_kw=dict(kw, merge_small_dims=False, precondition_every=2, start_preconditioning_step=3,
                     graft=graft, diag_eps=1e-10, init_eps=1e-6, ridge_eps=0.0, root="eigh"),
        ref_kw=dict(kw, decoupled_weight_decay=True, shape_interpretation=False, preconditioning_compute_steps=2,
                    start_preconditioning_step=3, graft_type=GRAFT[graft], diagonal_eps=1e-10, matrix_eps=1e-6,
                    use_svd=True))
    assert ours.root_computations == 4 * (6 * 2 + 3)  # steps 2, 4, 6, 8: 6 blocks x 2 dims + one 3-D tensor


@pytest.mark.parametrize("side,ref_type", [("left", PreConditionerType.INPUT), ("right", PreConditionerType.OUTPUT)])
def test_one_sided_equals_the_references_input_and_output_types(side, ref_type):
    # 'left': every dimension but the last (the exponent counts them: a matrix gets L^(-1/2) G); 'right': the last
    kw = dict(lr=0.05, betas=(0.9, 0.99), block_size=8)
    ours = _run_pair(
        SHAPES, ours_kw=dict(kw, merge_small_dims=False, precondition_every=2, start_preconditioning_step=1,
                             graft="adagrad", ridge_eps=0.0, one_sided=side),
        ref_kw=dict(kw, shape_interpretation=False, preconditioning_compute_steps=2, start_preconditioning_step=1,
                    graft_type=LayerWiseGrafting.ADAGRAD, use_svd=True, pre_conditioner_type=ref_type))
    # (20, 12) in 3 x 2 blocks and (6, 4, 3): 'left' keeps 6 + 2 statistics, 'right' 6 + 1
    assert len(ours.state[next(iter(ours.state))]["stats"]) == 6
    assert ours.root_computations == 4 * (6 + (2 if side == "left" else 1))


def test_merged_small_dims_equal_the_reference():
    # (4, 2, 3) merges to (8, 3) and (2, 3, 5) to (6, 5) in both implementations with block 8
    kw = dict(lr=0.02, betas=(0.9, 0.999), block_size=8)
    _run_pair([(4, 2, 3), (2, 3, 5)],
                         ours_kw=dict(kw, merge_small_dims=True, precondition_every=3, start_preconditioning_step=1,
                                      graft="adagrad", ridge_eps=0.0),
                         ref_kw=dict(kw, shape_interpretation=True, preconditioning_compute_steps=3,
                                     start_preconditioning_step=1, graft_type=LayerWiseGrafting.ADAGRAD, use_svd=True))


def test_newton_roots_match_the_reference_schur_newton_to_its_tolerance():
    # the reference stops its coupled Newton iteration at max |M - I| <= 1e-3 and estimates lambda_max by
    # power iteration; ours iterates to 1e-12 with the exact lambda_max: agreement to the reference's tolerance
    kw = dict(lr=0.05, betas=(0.9, 0.99), block_size=8)
    _run_pair(SHAPES[:2], tol=5e-3,
                         ours_kw=dict(kw, merge_small_dims=False, precondition_every=2, start_preconditioning_step=1,
                                      graft="adagrad", init_eps=1e-6, ridge_eps=1e-6, root="newton"),
                         ref_kw=dict(kw, shape_interpretation=False, preconditioning_compute_steps=2,
                                     start_preconditioning_step=1, graft_type=LayerWiseGrafting.ADAGRAD,
                                     matrix_eps=1e-6, use_svd=False))


def test_newton_and_eigh_roots_agree():
    def run(root):
        ps = _params([(12, 9)])
        opt = Shampoo(ps, lr=0.1, block_size=16, precondition_every=1, start_preconditioning_step=0, root=root,
                      ridge_eps=1e-4)
        gen = torch.Generator().manual_seed(3)
        for _ in range(5):
            ps[0].grad = torch.randn(12, 9, generator=gen, dtype=torch.float64)
            opt.step()
        return ps[0].detach()
    assert torch.allclose(run("newton"), run("eigh"), rtol=0, atol=1e-9)


def test_pieces_against_their_definitions():
    g = torch.Generator().manual_seed(4)
    G = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    # mode-1 unfolding: rows indexed by the second dimension
    U = G.permute(1, 0, 2).reshape(4, 15)
    assert torch.allclose(mode_gram(G, 1), U @ U.T)
    # for a matrix, G x_1 L x_2 R = L G R, i.e. (L kron R) vec(G) in row-major vec
    M = torch.randn(6, 4, generator=g, dtype=torch.float64)
    A, B = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(4, 4, generator=g, dtype=torch.float64)
    L, R = A @ A.T, B @ B.T
    assert torch.allclose(apply_along(M, [L, R]), L @ M @ R)
    assert torch.allclose(apply_along(M, [L, R]).reshape(-1), torch.kron(L, R) @ M.reshape(-1))
    # inverse roots vs scipy, with the ridge relative to lambda_max
    S = (A @ A.T).numpy()
    lmax = np.linalg.eigvalsh(S)[-1]
    want = np.real(scipy.linalg.fractional_matrix_power(S + 1e-3 * lmax * np.eye(6), -0.25))
    for method in ("eigh", "newton"):
        assert np.allclose(inverse_root(torch.from_numpy(S), 4, 1e-3, method).numpy(), want, atol=1e-9)
    # blocks: split then merge is the identity; sizes as the paper's partition (last block the remainder)
    X = torch.randn(20, 12, generator=g)
    b = _Blocks([20, 12], 8)
    assert [tuple(p.shape) for p in b.split(X)] == [(8, 8), (8, 4), (8, 8), (8, 4), (4, 8), (4, 4)]
    assert torch.equal(b.merge(b.split(X)), X)
    assert merge_dims((4, 8, 3, 3), 128) == [96, 3]
    assert merge_dims((200, 64), 128) == [200, 64]
    assert merge_dims((64, 1, 5), 128) == [64, 5]


def test_a_checkpoint_resumes_exactly_with_float64_statistics():
    # torch's load_state_dict casts floating state to the parameter's dtype (float32 here); Shampoo keeps
    # its statistics and roots in float64, so a resumed run must repeat the uninterrupted one bit for bit
    def grads(t):
        return [torch.randn(12, 9, generator=torch.Generator().manual_seed(10 + t))]

    def run(ps, opt, ts):
        for t in ts:
            ps[0].grad = grads(t)[0]
            opt.step()
    kw = dict(lr=0.05, block_size=16, precondition_every=2, start_preconditioning_step=1)
    a = [torch.nn.Parameter(torch.ones(12, 9))]
    oa = Shampoo(a, **kw)
    run(a, oa, range(6))
    b = [torch.nn.Parameter(torch.ones(12, 9))]
    ob = Shampoo(b, **kw)
    run(b, ob, range(3))
    sd = ob.state_dict()
    c = [torch.nn.Parameter(b[0].detach().clone())]
    oc = Shampoo(c, **kw)
    oc.load_state_dict(sd)
    assert oc.state[c[0]]["stats"][0].dtype == torch.float64
    run(c, oc, range(3, 6))
    assert torch.equal(a[0], c[0])


def test_beta2_one_sums_the_statistics():
    ps = _params([(5, 3)])
    opt = Shampoo(ps, betas=(0.9, 1.0), init_eps=1e-3, block_size=16, merge_small_dims=False)
    gen = torch.Generator().manual_seed(6)
    L, R = 1e-3 * torch.eye(5, dtype=torch.float64), 1e-3 * torch.eye(3, dtype=torch.float64)
    for _ in range(3):
        gr = torch.randn(5, 3, generator=gen, dtype=torch.float64)
        ps[0].grad = gr
        opt.step()
        L, R = L + gr @ gr.T, R + gr.T @ gr
    st = opt.state[ps[0]]["stats"]
    assert torch.allclose(st[0], L) and torch.allclose(st[1], R)


def test_graft_only_before_start_is_adagrad_with_momentum():
    ps = _params([(6, 5)])
    p0 = ps[0].detach().clone()
    opt = Shampoo(ps, lr=0.1, betas=(0.9, 0.999), nesterov=False, start_preconditioning_step=10 ** 9, graft="adagrad",
                  diag_eps=1e-10)
    gen = torch.Generator().manual_seed(5)
    acc, m, w = torch.zeros(6, 5, dtype=torch.float64), torch.zeros(6, 5, dtype=torch.float64), p0.clone()
    for _ in range(4):
        gr = torch.randn(6, 5, generator=gen, dtype=torch.float64)
        ps[0].grad = gr.clone()
        opt.step()
        acc += gr * gr
        m = 0.9 * m + gr / (acc.sqrt() + 1e-10)
        w = w - 0.1 * m
    assert torch.allclose(ps[0].detach(), w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kw,match", [({"graft": "adam"}, "graft"), ({"root": "svd"}, "root"),
                                      ({"block_size": 0}, "block_size"), ({"exponent": -1}, "exponent"),
                                      ({"init_eps": float("nan")}, "init_eps"), ({"lr": -1.0}, "lr"),
                                      ({"one_sided": "both"}, "one_sided")])
def test_bad_arguments_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        Shampoo([torch.nn.Parameter(torch.zeros(2, 2))], **kw)
