"""pg_subspaces_2024's tools against closed forms: the Hessian of a loss over chosen parameters equals
torch.autograd.functional.hessian of the same loss (and the gradient autograd's); the top-k subspace
is orthonormal and spans the largest-|eigenvalue| directions of a matrix built from known ones; the
gradient share is 1 inside the subspace, 0 orthogonal to it, k / n on average for random ones; the
overlap is 1 for a subspace with itself and k / n on average for random pairs; and the actor loss of
the experiment is PPO's clipped surrogate as Stable-Baselines3 computes it."""
import math

import pytest
import torch
from torch import nn

from optrepro.rl.subspace import gradient_fraction, hessian_and_grad, overlap, random_subspace, top_subspace

pytestmark = pytest.mark.reference


def test_hessian_and_gradient_equal_autograd_over_a_subset_of_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    names = ["2.weight", "2.bias"]  # the last layer only; the first stays fixed

    def loss_of(params):
        return (torch.func.functional_call(net, params, (x,)) - y).pow(2).mean()
    loss, g, H = hessian_and_grad(net, names, loss_of)
    w0, b0 = net[2].weight.detach().clone(), net[2].bias.detach().clone()

    def f(flat):
        w, b = flat[:10].view(2, 5), flat[10:]
        return (nn.functional.linear(net[1](net[0](x)), w, b) - y).pow(2).mean()
    flat0 = torch.cat([w0.reshape(-1), b0])
    torch.testing.assert_close(H, torch.autograd.functional.hessian(f, flat0), rtol=1e-10, atol=1e-12)
    x0 = flat0.clone().requires_grad_()
    torch.testing.assert_close(g, torch.autograd.grad(f(x0), x0)[0], rtol=1e-10, atol=1e-12)
    assert abs(loss - float(f(flat0).detach())) < 1e-12


def test_subspace_share_and_overlap_closed_forms():
    gen = torch.Generator().manual_seed(0)
    n, k = 40, 5
    Q = random_subspace(n, n, gen)
    vals = torch.cat([torch.tensor([-9.0, 8.0, 7.0, -6.0, 5.0]), torch.linspace(-1, 1, n - 5)]).double()
    H = Q @ torch.diag(vals) @ Q.T
    V = top_subspace(H, k)
    torch.testing.assert_close(V.T @ V, torch.eye(k, dtype=torch.float64), rtol=0, atol=1e-12)
    assert abs(overlap(V, Q[:, :k]) - 1) < 1e-12  # the five largest |eigenvalues| are the first five columns
    inside = Q[:, :k] @ torch.randn(k, generator=gen, dtype=torch.float64)
    outside = Q[:, k:] @ torch.randn(n - k, generator=gen, dtype=torch.float64)
    assert abs(gradient_fraction(V, inside) - 1) < 1e-12 and gradient_fraction(V, outside) < 1e-20
    shares = [gradient_fraction(random_subspace(n, k, gen), inside) for _ in range(2000)]
    overl = [overlap(random_subspace(n, k, gen), random_subspace(n, k, gen)) for _ in range(2000)]
    for xs in (shares, overl):
        mean = sum(xs) / len(xs)
        se = math.sqrt(sum((v - mean) ** 2 for v in xs) / (len(xs) - 1) / len(xs))
        assert abs(mean - k / n) < 4 * se


def test_actor_loss_is_sb3_ppo_surrogate_at_ratio_one():
    from optrepro.papers.pg_subspaces_2024.experiment import Config, NETS, analyse
    from optrepro.rl.sb3 import build_sb3
    cfg = Config(total_steps=256, n_envs=2, n_steps=64, hidden=[4, 4])
    model = build_sb3(cfg, "ppo", n_steps=64, batch_size=32, n_epochs=1)
    model.learn(total_timesteps=128)  # fills the buffer with the last rollout
    out = analyse(model)
    buf = model.rollout_buffer
    data = next(buf.get(batch_size=buf.buffer_size * buf.n_envs))
    _, logp, _ = model.policy.evaluate_actions(data.observations, data.actions)
    adv = (data.advantages - data.advantages.mean()) / (data.advantages.std() + 1e-8)
    loss = -(adv * torch.exp(logp - data.old_log_prob)).mean()  # SB3's clipped loss at ratio 1
    params = [p for k, p in model.policy.named_parameters() if k.startswith(NETS["actor"])]
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)])
    torch.testing.assert_close(out["actor"][0].float(), g, rtol=1e-4, atol=1e-6)
