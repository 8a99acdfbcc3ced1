"""Whole-episode estimators against references: the surrogate's gradient equals the literal
G(PO)MDP sum; the Hessian-vector estimate equals its per-episode literal formula and, averaged over
LQR episodes, the exact Hessian of the closed-form return (finite differences of the exact
gradient) within 4 standard errors."""
import numpy as np
import pytest
import torch

from optrepro.rl import make_env
from optrepro.rl.episodes import gpomdp_surrogate, hvp_estimate, sample_episodes
from optrepro.rl.estimators import gpomdp_gradient
from optrepro.rl.policy import ActorCritic, LinearGaussian, TabularSoftmax, flat

pytestmark = pytest.mark.reference


def _cartpole(n=4, seed=0):
    env = make_env("CartPole-v1")
    env.reset(seed=seed)
    torch.manual_seed(seed)
    pol = ActorCritic(4, env.action_space, (8,))
    return pol, pol.actor_parameters(), sample_episodes(env, pol, n)


def test_surrogate_gradient_is_the_literal_gpomdp_sum():
    pol, params, eps = _cartpole()
    g = flat(torch.autograd.grad(gpomdp_surrogate(pol, eps, 0.97), params))
    scores = [[flat(torch.autograd.grad(pol.dist(o[None]).log_prob(a[None]).sum(), params)).numpy()
               for o, a in zip(e.obs, e.actions)] for e in eps]
    want = gpomdp_gradient(scores, [e.rewards for e in eps], 0.97)
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-4, atol=1e-5)


def test_hvp_estimate_is_the_per_episode_formula():
    pol, params, eps = _cartpole(n=3, seed=1)
    u = torch.randn(sum(p.numel() for p in params), generator=torch.Generator().manual_seed(0))
    got = hvp_estimate(pol, params, eps, 0.97, u)
    want = torch.zeros_like(u)
    for e in eps:
        logp = pol.dist(e.obs).log_prob(e.actions)
        w = torch.as_tensor(np.cumsum((e.rewards * 0.97 ** np.arange(len(e.rewards)))[::-1])[::-1].copy(),
                            dtype=torch.float32)
        g_phi = flat(torch.autograd.grad((logp * w).sum(), params, create_graph=True))
        g_s = flat(torch.autograd.grad(logp.sum(), params, retain_graph=True))
        hess_u = flat(torch.autograd.grad(g_phi @ u, params))
        want += (g_phi.detach() * (g_s @ u) + hess_u) / len(eps)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _chunked(fn, n_chunks):
    vals = np.array([fn() for _ in range(n_chunks)])
    return vals.mean(0), vals.std(0, ddof=1) / np.sqrt(n_chunks)


def test_tabular_estimates_are_exactly_unbiased():
    """Enumerate every trajectory of a 2-state, 2-action MDP over 3 steps: Σ_τ p(τ) ∇Φ(τ) and
    Σ_τ p(τ) B(τ) u equal the gradient and the Hessian-vector product of the exact finite-horizon
    return J(θ) = Σ_τ p_θ(τ) Σ_t γ^t r_t, computed by autograd (float64)."""
    import itertools

    from optrepro.rl.episodes import Episode
    gamma, H = 0.9, 3
    mdp = make_env("optrepro/TabularMDP-v0", n_states=2, n_actions=2).unwrapped
    P, R, mu = (torch.as_tensor(x, dtype=torch.float64) for x in (mdp.P, mdp.R, mdp.mu))
    g = np.random.default_rng(0)
    pol = TabularSoftmax(g.normal(size=(2, 2))).double()
    u = torch.as_tensor(g.normal(size=4), dtype=torch.float64)
    trajs = [(ss, aa) for ss in itertools.product(range(2), repeat=H) for aa in itertools.product(range(2), repeat=H)]

    def prob(theta, ss, aa):
        pi = torch.softmax(theta, 1)
        p = mu[ss[0]]
        for t in range(H):
            p = p * pi[ss[t], aa[t]] * (P[ss[t], aa[t], ss[t + 1]] if t + 1 < H else 1.0)
        return p

    def J(theta):
        return sum(prob(theta, ss, aa) * sum(gamma ** t * R[ss[t], aa[t]] for t in range(H)) for ss, aa in trajs)

    theta = pol.theta.detach().clone()
    grad_exact = torch.autograd.functional.jacobian(J, theta).ravel()
    hvp_exact = torch.autograd.functional.hvp(J, theta, u.view(2, 2))[1].ravel()
    grad, hvp = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    for ss, aa in trajs:
        ep = Episode(torch.tensor(ss, dtype=torch.float64), torch.tensor(aa), mdp.R[list(ss), list(aa)])
        p = float(prob(theta, ss, aa))
        grad += p * flat(torch.autograd.grad(gpomdp_surrogate(pol, [ep], gamma), [pol.theta]))
        hvp += p * hvp_estimate(pol, [pol.theta], [ep], gamma, u)
    torch.testing.assert_close(grad, grad_exact, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hvp, hvp_exact, rtol=1e-5, atol=1e-6)
    assert hvp_exact.abs().max() > 1e-2  # not a vacuous comparison


def test_lqr_surrogate_gradient_matches_exact():
    """The torch surrogate's gradient for a linear Gaussian policy on the LQR env: within 4 SE of the
    exact ∇J = -∇cost (4,000 episodes)."""
    gamma, sigma, K = 0.8, 0.5, np.array([[0.2, 0.4]])
    env = make_env("optrepro/LQR-v0", horizon=40)  # gamma^40 = 1e-4
    env.reset(seed=0)
    torch.manual_seed(0)
    pol = LinearGaussian(K, sigma)
    mean, se = _chunked(lambda: flat(torch.autograd.grad(gpomdp_surrogate(pol, sample_episodes(env, pol, 100), gamma),
                                                          [pol.K])).numpy(), 40)
    exact = -env.unwrapped.exact_grad(K, sigma, gamma).ravel()
    assert np.all(np.abs(mean - exact) < 4 * se), (mean, exact, se)
    assert np.linalg.norm(se) < np.linalg.norm(exact) / 3  # power: an error of a third would show
