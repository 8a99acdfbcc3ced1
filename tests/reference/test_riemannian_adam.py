"""riemannian_adam_2019 against geoopt 0.5.1 (PoincareBallExact, SphereExact, RiemannianAdam,
RiemannianSGD) and against closed forms: Möbius gyration by its definition, parallel transport's
isometry, the Euclidean case as torch.optim.Adam. The embedding's chunked loss and reconstruction
metrics against dense n x n versions written out here."""
import geoopt
import pytest
import torch

from optrepro.geometry import Euclidean, PoincareBall, Sphere, make_manifold
from optrepro.papers.riemannian_adam_2019 import experiment as E
from optrepro.papers.riemannian_adam_2019.method import RiemannianAdam, RiemannianSGD
from tests.reference.lockstep import lockstep

pytestmark = pytest.mark.reference
f64 = torch.float64


def _ball(c):
    """geoopt stores c through a float32 softplus: build ours with the value geoopt really uses."""
    ref = geoopt.PoincareBallExact(c=c).double()
    return PoincareBall(ref.c.item()), ref


def _points(ball, n=8, d=5, scale=0.25, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ball.projx(torch.randn(n, d, generator=g, dtype=f64) * scale / ball.c ** 0.5)


@pytest.mark.parametrize("c", [1.0, 0.5, 2.0])
def test_poincare_operations_equal_geoopt(c):
    ours, ref = _ball(c)
    x, y = _points(ours, seed=0), _points(ours, seed=1)
    g = torch.Generator().manual_seed(2)
    u, v = (torch.randn(8, 5, generator=g, dtype=f64) for _ in range(2))
    close = lambda a, b: torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)  # noqa: E731
    close(ours.mobius_add(x, y), ref.mobius_add(x, y, project=False))  # ours never projects a sum
    close(ours.expmap(x, u), ref.expmap(x, u))
    close(ours.transp(x, y, v), ref.transp(x, y, v))
    torch.testing.assert_close(ours.dist(x, y).squeeze(-1), ref.dist(x, y), atol=1e-9, rtol=1e-9)
    close(ours.egrad2rgrad(x, u), ref.egrad2rgrad(x, u))
    close(ours.inner(x, u, v), ref.inner(x, u, v, keepdim=True))
    far = x * 100  # outside the ball: both put it 1e-5 inside the boundary
    close(ours.projx(far), ref.projx(far))


def test_gyration_closed_form_is_its_definition():
    ball = PoincareBall(1.3)
    x, y, w = _points(ball, seed=3), _points(ball, seed=4), _points(ball, seed=5)
    literal = ball.mobius_add(-ball.mobius_add(x, y), ball.mobius_add(x, ball.mobius_add(y, w)))
    torch.testing.assert_close(ball.gyration(x, y, w), literal, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("M", [PoincareBall(1.0), Sphere()])
def test_parallel_transport_is_an_isometry_and_carries_the_geodesic_velocity(M):
    x = _points(M, seed=6) if isinstance(M, PoincareBall) else M.projx(_points(PoincareBall(), seed=6))
    g = torch.Generator().manual_seed(7)
    u, v, w = (M.egrad2rgrad(x, 0.3 * torch.randn(8, 5, generator=g, dtype=f64)) for _ in range(3))
    y = M.expmap(x, u)
    pv, pw, pu = M.transp(x, y, v), M.transp(x, y, w), M.transp(x, y, u)
    torch.testing.assert_close(M.inner(y, pv, pw), M.inner(x, v, w), atol=1e-12, rtol=1e-9)
    # the geodesic's velocity at its end, by a finite difference of expmap_x(t u) at t = 1
    h = 1e-6
    vel = (M.expmap(x, (1 + h) * u) - M.expmap(x, (1 - h) * u)) / (2 * h)
    torch.testing.assert_close(pu, vel, atol=1e-7, rtol=1e-6)
    if isinstance(M, Sphere):
        torch.testing.assert_close((pv * y).sum(-1), torch.zeros(8, dtype=f64), atol=1e-12, rtol=0)


def _sq_dist_loss(dist, target):
    return lambda p: (dist(p, target) ** 2).sum()


def _run_pair(ours_opt, ours_p, ref_opt, ref_p, loss_ours, loss_ref, steps=50, atol=1e-9):
    for step in range(steps):
        for opt, p, loss in ((ours_opt, ours_p, loss_ours), (ref_opt, ref_p, loss_ref)):
            opt.zero_grad()
            loss(p).backward()
            opt.step()
        torch.testing.assert_close(ours_p.detach(), ref_p.detach(), atol=atol, rtol=1e-8,
                                   msg=lambda m: f"step {step + 1}: {m}")


@pytest.mark.parametrize("kw", [dict(amsgrad=False), dict(amsgrad=True), dict(amsgrad=False, betas=(0.5, 0.9))])
def test_riemannian_adam_equals_geoopt_on_the_poincare_ball(kw):
    ours_M, ref_M = _ball(1.0)
    x0, target = _points(ours_M, n=20, scale=0.1, seed=8), _points(ours_M, n=20, scale=0.3, seed=9)
    a = x0.clone().requires_grad_()
    b = geoopt.ManifoldParameter(x0.clone(), manifold=ref_M)
    oa = RiemannianAdam([{"params": [a], "manifold": ours_M}], lr=0.05, **kw)
    ob = geoopt.optim.RiemannianAdam([b], lr=0.05, **kw)
    _run_pair(oa, a, ob, b, _sq_dist_loss(ours_M.dist, target), _sq_dist_loss(ref_M.dist, target))
    # not two equal wrong answers: every point ends nearer its target than it started
    assert bool((ours_M.dist(a, target) < ours_M.dist(x0, target)).all())


def test_riemannian_sgd_equals_geoopt_with_the_exponential_map():
    ours_M, ref_M = _ball(1.0)
    x0, target = _points(ours_M, n=20, scale=0.1, seed=10), _points(ours_M, n=20, scale=0.3, seed=11)
    a = x0.clone().requires_grad_()
    b = geoopt.ManifoldParameter(x0.clone(), manifold=ref_M)
    oa = RiemannianSGD([{"params": [a], "manifold": ours_M}], lr=0.05)
    ob = geoopt.optim.RiemannianSGD([b], lr=0.05)
    _run_pair(oa, a, ob, b, _sq_dist_loss(ours_M.dist, target), _sq_dist_loss(ref_M.dist, target), atol=1e-12)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_riemannian_adam_equals_geoopt_on_the_sphere_without_momentum(amsgrad):
    """geoopt's sphere moves momentum by projection, ours by parallel transport: with beta1 = 0
    nothing is transported and the two must agree."""
    ref_M = geoopt.SphereExact()
    x0 = Sphere().projx(_points(PoincareBall(), n=12, seed=12))
    target = Sphere().projx(_points(PoincareBall(), n=12, seed=13))
    a = x0.clone().requires_grad_()
    b = geoopt.ManifoldParameter(x0.clone(), manifold=ref_M)
    oa = RiemannianAdam([{"params": [a], "manifold": Sphere()}], lr=0.02, betas=(0.0, 0.99), amsgrad=amsgrad)
    ob = geoopt.optim.RiemannianAdam([b], lr=0.02, betas=(0.0, 0.99), amsgrad=amsgrad)
    loss = lambda p: -(p * target).sum()  # noqa: E731
    _run_pair(oa, a, ob, b, loss, loss, steps=40)
    torch.testing.assert_close(a.detach().norm(dim=-1), torch.ones(12, dtype=f64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_euclidean_with_one_coordinate_per_factor_is_torch_adam(amsgrad):
    lockstep(lambda p: RiemannianAdam(p, lr=0.01, amsgrad=amsgrad),
             lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=amsgrad, foreach=False),
             shapes=[(7, 1), (5, 1), (1, 1)], atol=1e-12, rtol=1e-10)


def test_second_moment_is_one_number_per_row():
    p = torch.nn.Parameter(torch.randn(6, 4, dtype=f64) * 0.1)
    opt = RiemannianAdam([{"params": [p], "manifold": PoincareBall()}], lr=0.01)
    p.grad = torch.randn(6, 4, dtype=f64)
    x = p.detach().clone()
    opt.step()
    v = opt.state[p]["exp_avg_sq"]
    assert v.shape == (6, 1)
    g = PoincareBall().egrad2rgrad(x, p.grad)
    torch.testing.assert_close(v, 0.001 * PoincareBall().inner(x, g))


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="lr"):
        RiemannianAdam([torch.zeros(2, 2)], lr=-1.0)
    with pytest.raises(ValueError, match="at least one dimension"):
        RiemannianAdam([torch.zeros(())])
    with pytest.raises(TypeError, match="Manifold"):
        RiemannianSGD([{"params": [torch.zeros(2, 2)], "manifold": "poincare"}])
    with pytest.raises(ValueError, match="curvature"):
        PoincareBall(0.0)
    with pytest.raises(ValueError, match="unknown manifold"):
        make_manifold("torus")
    assert isinstance(make_manifold("euclidean"), Euclidean)


def _dense(cl):
    n = cl.n
    rel = torch.zeros(n, n, dtype=torch.bool)
    rel[cl.pairs[:, 0], cl.pairs[:, 1]] = True
    rel[cl.pairs[:, 1], cl.pairs[:, 0]] = True
    return rel


def test_closure_of_a_tree():
    cl = E.tree_closure(3, 5)
    assert cl.n == 364 and len(cl.pairs) == sum(3 ** k * k for k in range(1, 6))
    rel = _dense(cl)
    assert torch.equal(cl.related_rows(torch.arange(cl.n)), rel)
    u = cl.pairs[:200, 0]
    negs = cl.sample_negatives(u, 10, torch.Generator().manual_seed(0))
    assert not bool(rel[u[:, None], negs].any()) and bool((negs != u[:, None]).all())


def test_chunked_loss_and_reconstruction_equal_dense_versions():
    cl = E.tree_closure(2, 9)  # 1,023 nodes: more than one 512-row chunk
    ball = PoincareBall()
    emb = _points(ball, n=cl.n, d=3, scale=0.5, seed=14)
    rel = _dense(cl)
    n = cl.n
    d = ball.dist(emb[:, None], emb[None]).squeeze(-1)
    eye = torch.eye(n, dtype=torch.bool)
    u, v = cl.pairs[:, 0], cl.pairs[:, 1]
    losses = []
    for a, b in zip(u.tolist(), v.tolist()):
        negatives = (~rel[a] & ~eye[a]).nonzero().squeeze(1)
        logits = torch.cat([-d[a, b].view(1), -d[a, negatives]])
        losses.append(float(torch.logsumexp(logits, 0) + d[a, b]))
    assert E.full_loss(ball, emb, cl) == pytest.approx(sum(losses) / len(losses), rel=1e-12)
    ranks, aps = [], []
    for a, b in zip(u.tolist(), v.tolist()):
        ranks.append(1 + int(((d[a] < d[a, b]) & ~rel[a] & ~eye[a]).sum()))
    for a in range(n):
        if not rel[a].any():
            continue
        others = sorted((float(d[a, j]), j) for j in range(n) if j != a)
        hits, prec_sum = 0, 0.0
        for k, (_, j) in enumerate(others, start=1):
            if rel[a, j]:
                hits += 1
                prec_sum += hits / k
        aps.append(prec_sum / hits)
    mean_rank, mean_ap = E.reconstruction(ball, emb, cl)
    assert mean_rank == pytest.approx(sum(ranks) / len(ranks), rel=1e-12)
    assert mean_ap == pytest.approx(100 * sum(aps) / len(aps), rel=1e-12)


def test_read_closure_csv(tmp_path):
    p = tmp_path / "closure.csv"
    p.write_text("id1,id2,weight\ndog.n.01,mammal.n.01,1\ndog.n.01,animal.n.01,1\nmammal.n.01,animal.n.01,1\n")
    cl = E.read_closure(str(p))
    assert cl.n == 3 and cl.names == ["dog.n.01", "mammal.n.01", "animal.n.01"]
    assert cl.pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
