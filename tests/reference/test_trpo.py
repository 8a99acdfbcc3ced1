"""Our TRPO step against sb3-contrib's TRPO on the same batch and parameters: the same actor
parameters after one update (discrete and Gaussian policies), and conjugate gradient against a
direct solve."""
import copy

import numpy as np
import pytest
import torch

from optrepro.rl import make_env
from optrepro.rl.onpolicy import normalized
from optrepro.rl.policy import ActorCritic, flat
from optrepro.papers.trpo_2015.method import conjugate_gradient, trpo_step

pytestmark = pytest.mark.reference


def _sb3_probe(env_id, seed):
    """An sb3-contrib TRPO that records its parameters and batch just before its first update."""
    from sb3_contrib import TRPO

    class Probe(TRPO):
        def train(self):
            self.before = copy.deepcopy(self.policy)
            buf = self.rollout_buffer
            self.batch = [torch.as_tensor(np.asarray(x).reshape(len(x) * x.shape[1], *x.shape[2:]))
                          for x in (buf.observations, buf.actions, buf.log_probs, buf.advantages)]
            torch.manual_seed(1234)  # the x0 noise of sb3-contrib's conjugate gradient
            super().train()
            raise KeyboardInterrupt  # stop after one update

    m = Probe("MlpPolicy", make_env(env_id, seed), n_steps=256, seed=seed, device="cpu",
              policy_kwargs={"net_arch": dict(pi=[32, 32], vf=[32, 32])})
    with pytest.raises(KeyboardInterrupt):
        m.learn(256)
    return m


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "Hopper-v5"])
def test_trpo_step_matches_sb3_contrib(env_id):
    m = _sb3_probe(env_id, seed=3)
    env = make_env(env_id)
    ours = ActorCritic(env.observation_space.shape[0], env.action_space, (32, 32)).load_sb3(m.before)
    obs, act, logp, adv = m.batch
    act = act.long().flatten() if ours.discrete else act.float()
    before = flat(ours.actor_parameters()).detach().clone()
    torch.manual_seed(1234)
    x0 = 1e-4 * torch.randn_like(before)
    st = trpo_step(ours, obs.float(), act, logp.float(), normalized(adv.float()), max_kl=0.01, cg_iters=15,
                   damping=0.1, backtrack=0.8, max_backtracks=10, kl_direction="new||old", x0=x0,
                   kl_per_action_dim=True)
    ref = ActorCritic(env.observation_space.shape[0], env.action_space, (32, 32)).load_sb3(m.policy)
    after, want = flat(ours.actor_parameters()).detach(), flat(ref.actor_parameters()).detach()
    assert st.accepted == 1.0
    assert (want - before).norm() > 1e-3  # sb3 moved the parameters: the comparison is not vacuous
    torch.testing.assert_close(after, want, rtol=1e-4, atol=1e-5)
    assert st.kl < 0.01


def test_sb3_contrib_kl_is_per_action_dimension():
    """With the paper's KL (summed over Hopper's 3 action dimensions) the step differs from
    sb3-contrib's, which bounds the KL averaged over dimensions: the reason its Hopper curves differ."""
    m = _sb3_probe("Hopper-v5", seed=3)
    env = make_env("Hopper-v5")
    ours = ActorCritic(env.observation_space.shape[0], env.action_space, (32, 32)).load_sb3(m.before)
    obs, act, logp, adv = m.batch
    torch.manual_seed(1234)
    x0 = 1e-4 * torch.randn_like(flat(ours.actor_parameters()))
    trpo_step(ours, obs.float(), act.float(), logp.float(), normalized(adv.float()), kl_direction="new||old", x0=x0)
    ref = ActorCritic(env.observation_space.shape[0], env.action_space, (32, 32)).load_sb3(m.policy)
    diff = (flat(ours.actor_parameters()) - flat(ref.actor_parameters())).norm()
    assert diff > 1e-3


def test_collector_matches_sb3_rollout_buffer():
    """Same initial weights and torch seed: our rollout (actions, log-probs, values, GAE advantages,
    returns with time-limit bootstrapping, Pendulum truncates at 200 steps) equals sb3-contrib's buffer."""
    from sb3_contrib import TRPO

    from optrepro.rl.onpolicy import Collector

    class Stop(TRPO):
        def train(self):
            raise KeyboardInterrupt

    for env_id in ("Pendulum-v1", "CartPole-v1"):
        m = Stop("MlpPolicy", make_env(env_id, 0), n_steps=512, seed=0, device="cpu",
                 policy_kwargs={"net_arch": dict(pi=[32, 32], vf=[32, 32])})
        env = make_env(env_id)
        ours = ActorCritic(env.observation_space.shape[0], env.action_space, (32, 32)).load_sb3(m.policy)
        torch.manual_seed(5)
        with pytest.raises(KeyboardInterrupt):
            m.learn(512)
        torch.manual_seed(5)
        b = Collector(env_id, 1, 0, 0.99, 0.95).collect(ours, 512)
        buf = m.rollout_buffer
        for want, got in [(buf.actions.reshape(512, -1), b.actions.reshape(512, -1)), (buf.log_probs.ravel(), b.logp),
                          (buf.values.ravel(), b.values), (buf.advantages.ravel(), b.advantages),
                          (buf.returns.ravel(), b.returns)]:
            np.testing.assert_allclose(got.numpy(), np.asarray(want), rtol=1e-5, atol=1e-4)
        assert buf.episode_starts.sum() >= 2  # episodes ended inside the rollout


def test_both_kl_directions_give_the_same_direction():
    """KL(old||new) and KL(new||old) have the same Hessian at θ_old, so with the line search
    accepting the full step (huge δ) both give the same update."""
    env = make_env("CartPole-v1")
    torch.manual_seed(0)
    base = ActorCritic(4, env.action_space, (16,))
    obs = torch.randn(200, 4)
    with torch.no_grad():
        d = base.dist(obs)
        act = d.sample()
        logp = d.log_prob(act)
    adv = normalized(torch.randn(200))
    out = []
    for direction in ("old||new", "new||old"):
        p = copy.deepcopy(base)
        trpo_step(p, obs, act, logp, adv, max_kl=1e-4, cg_iters=10, kl_direction=direction)
        out.append(flat(p.actor_parameters()).detach())
    assert (out[0] - flat(base.actor_parameters())).norm() > 0
    torch.testing.assert_close(out[0], out[1], rtol=1e-3, atol=1e-6)


def test_conjugate_gradient_solves_spd_system():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(20, 20, generator=g, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=60, residual_tol=1e-30)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)
