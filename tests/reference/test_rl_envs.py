"""envs/ and common/rl: the known-answer environments pass gymnasium's checker; their exact
gradients agree with finite differences; sampled policy gradients agree with the exact ones;
GAE's two limits."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from optrepro.errors import ConfigError
from optrepro.rl import evaluate, make_env, require_action_space, rollout
from optrepro.rl.estimators import discounted_returns, gae, gpomdp_gradient

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("env_id", ["optrepro/LQR-v0", "optrepro/TabularMDP-v0"])
def test_envs_pass_gymnasiums_checker(env_id):
    env = make_env(env_id, seed=0)
    check_env(env.unwrapped, skip_render_check=True)


def _fd(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def test_lqr_exact_gradient_is_the_derivative_of_the_exact_cost():
    env = make_env("optrepro/LQR-v0").unwrapped
    K = np.array([[0.3, 0.5]])
    for sigma in (0.0, 0.5):
        g = env.exact_grad(K, sigma=sigma, gamma=0.9)
        np.testing.assert_allclose(g, _fd(lambda k: env.exact_cost(k, sigma=sigma, gamma=0.9), K), rtol=1e-6)
    K_star = env.optimal_gain(gamma=0.9)
    assert np.abs(env.exact_grad(K_star, sigma=0.3, gamma=0.9)).max() < 1e-8  # noise does not move K*
    assert env.exact_cost(K_star, gamma=0.9) < env.exact_cost(K_star + 0.05, gamma=0.9)


def test_lqr_cost_matches_rollouts():
    """The closed-form J(K) is the mean discounted cost of episodes run through the env."""
    env = make_env("optrepro/LQR-v0", seed=0, horizon=80).unwrapped
    K, sigma, gamma = np.array([[0.2, 0.4]]), 0.3, 0.8
    rng = np.random.default_rng(0)
    costs = []
    for ep in range(3000):
        rewards = rollout(env, lambda x: -K @ x + sigma * rng.standard_normal(1), seed=ep)[2]
        costs.append(-np.dot(gamma ** np.arange(len(rewards)), rewards))
    se = np.std(costs) / np.sqrt(len(costs))
    assert abs(np.mean(costs) - env.exact_cost(K, sigma=sigma, gamma=gamma)) < 4 * se


def test_tabular_exact_gradient_is_the_derivative_of_the_exact_return():
    env = make_env("optrepro/TabularMDP-v0").unwrapped
    theta = np.random.default_rng(0).normal(size=env.R.shape)
    np.testing.assert_allclose(env.exact_grad(theta, 0.9), _fd(lambda t: env.exact_return(t, 0.9), theta), atol=1e-7)


def test_tabular_sampled_gradient_matches_exact():
    env = make_env("optrepro/TabularMDP-v0", seed=0, horizon=40).unwrapped
    gamma, theta = 0.7, np.random.default_rng(1).normal(size=env.R.shape)
    pi, rng, per_ep = env.softmax(theta), np.random.default_rng(2), []
    for ep in range(3000):
        states, actions, rewards = rollout(env, lambda s: rng.choice(pi.shape[1], p=pi[s]), seed=ep)
        scores = []
        for s, a in zip(states, actions):  # ∇_θ log π(a|s) of the softmax policy
            sc = np.zeros_like(theta)
            sc[s] -= pi[s]
            sc[s, a] += 1.0
            scores.append(sc.ravel())
        per_ep.append(gpomdp_gradient([scores], [rewards], gamma))
    per_ep = np.array(per_ep)
    est, se = per_ep.mean(0), per_ep.std(0) / np.sqrt(len(per_ep)) + 1e-12
    assert np.all(np.abs(est - env.exact_grad(theta, gamma).ravel()) < 4.5 * se)


def test_gae_limits():
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=7), rng.normal(size=7)
    d = np.array([0, 0, 1, 0, 0, 0, 0], float)
    last = 0.4
    adv1 = gae(r, v, d, last, gamma=0.9, lam=1.0)
    boot = np.r_[r[:-1], r[-1] + 0.9 * last]
    np.testing.assert_allclose(adv1, discounted_returns(boot, 0.9, d) - v)
    adv0 = gae(r, v, d, last, gamma=0.9, lam=0.0)
    nxt = np.r_[v[1:], last]
    np.testing.assert_allclose(adv0, r + 0.9 * (1 - d) * nxt - v)


def test_unknown_env_and_wrong_action_space_are_config_errors():
    with pytest.raises(ConfigError, match="not registered.*did you mean"):
        make_env("optrepro/LQR-v1")
    env = make_env("optrepro/TabularMDP-v0")
    with pytest.raises(ConfigError, match="handles box"):
        require_action_space(env, ("box",), "our TRPO")
    assert require_action_space(make_env("CartPole-v1"), ("discrete", "box"), "x") == "discrete"
    assert isinstance(gym.make("optrepro/LQR-v0").unwrapped.action_space, gym.spaces.Box)


def test_evaluate_is_the_mean_episode_return():
    env = make_env("optrepro/TabularMDP-v0", horizon=10).unwrapped
    mean, std = evaluate(lambda s: 0, env, episodes=5, seed=3)
    rets = [sum(env.R[s, 0] for s in rollout(env, lambda s: 0, seed=3 + k)[0]) for k in range(5)]
    assert np.isclose(mean, np.mean(rets)) and np.isclose(std, np.std(rets))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "Hopper-v5", "optrepro/LQR-v0",
                                    "optrepro/TabularMDP-v0"])
def test_a_restored_environment_steps_exactly_like_the_original(env_id):
    """common.rl.envstate through a checkpoint file: a fresh env (another seed) given the state of one
    that has run 37 steps then produces the same observations, rewards, ends and resets for 300 steps."""
    import io

    import torch

    from optrepro import checkpoint
    from optrepro.rl import make_env
    if env_id.startswith("Hopper"):
        pytest.importorskip("mujoco")
    a = make_env(env_id, 0)
    a.reset(seed=0)
    for _ in range(37):
        if any(a.step(a.action_space.sample())[2:4]):
            a.reset()
    b = make_env(env_id, 5)  # never reset: its RNG is created from the checkpoint
    buf = io.BytesIO()
    torch.save(checkpoint.dump(a), buf)
    buf.seek(0)
    checkpoint.load(b, torch.load(buf, weights_only=True))
    for _ in range(300):
        act = a.action_space.sample()
        x, y = a.step(act), b.step(act)
        assert np.array_equal(x[0], y[0]) and x[1:4] == y[1:4]
        if x[2] or x[3]:
            assert np.array_equal(a.reset()[0], b.reset()[0])
