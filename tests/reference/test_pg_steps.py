"""The step rules of polyak_pg_2024 and harpg_2022 against their equations."""
import copy

import numpy as np
import pytest
import torch

from optrepro.rl import make_env
from optrepro.rl.episodes import gpomdp_surrogate, hvp_estimate, sample_episodes
from optrepro.rl.policy import ActorCritic, flat
from optrepro.papers.harpg_2022.method import State, schedule, step
from optrepro.papers.polyak_pg_2024.method import PolyakStep

pytestmark = pytest.mark.reference


def test_polyak_step_is_the_formula_and_capped():
    p = torch.nn.Parameter(torch.zeros(3))
    g = torch.tensor([1.0, 2.0, 2.0])  # ‖g‖² = 9
    s = PolyakStep([p], c=0.5, eta_max=10.0, j_star=5.0)
    eta = s.step([g], j_hat=0.5, episode_returns=[0.0, 1.0])
    assert eta == pytest.approx(4.5 / (0.5 * 9)) and torch.allclose(p.detach(), eta * g)
    assert PolyakStep([p], c=0.5, eta_max=0.1, j_star=5.0).step([g], 0.5, [0.0]) == 0.1      # cap
    assert PolyakStep([p], c=0.5, eta_max=1.0, j_star=5.0).step([g], 6.0, [7.0]) == 0.0      # above J*: no step
    s = PolyakStep([p], j_star="running_max")
    s.step([g], 0.0, [3.0, 1.0])
    assert s.best == 3.0 and s.target([2.0]) == 3.0


def _setup(seed=0):
    env = make_env("CartPole-v1")
    env.reset(seed=seed)
    torch.manual_seed(seed)
    pol = ActorCritic(4, env.action_space, (8,))
    fixed = sample_episodes(env, pol, 2)
    return pol, pol.actor_parameters(), fixed


@pytest.mark.parametrize("algo", ["reinforce", "npg", "npg_igt", "nharpg"])
def test_harpg_family_steps_follow_their_equations(algo):
    """Two iterations with fixed episodes (so the estimates are deterministic): θ_2 and d_1 equal
    the recursions written out by hand."""
    pol, params, fixed = _setup()
    ref = copy.deepcopy(pol)
    rparams = ref.actor_parameters()
    gamma, g0 = 0.97, 0.05
    st, gen = State(), torch.Generator().manual_seed(3)
    step(algo, pol, params, lambda n: fixed[:1], gamma, g0, st, gen)
    step(algo, pol, params, lambda n: fixed[:1], gamma, g0, st, gen)

    def grad_at(theta):
        from optrepro.rl.policy import set_flat
        set_flat(rparams, theta)
        return flat(torch.autograd.grad(gpomdp_surrogate(ref, fixed[:1], gamma), rparams)).detach()

    th0 = flat(rparams).detach().clone()
    l0, (e1, l1) = schedule(algo, 0, g0)[1], schedule(algo, 1, g0)
    unit = lambda v: v / v.norm()
    if algo == "reinforce":
        th1 = th0 + g0 * grad_at(th0)
        th2 = th1 + g0 * grad_at(th1)
    elif algo == "npg":
        th1 = th0 + l0 * unit(grad_at(th0))
        th2 = th1 + l1 * unit(grad_at(th1))
    elif algo == "npg_igt":
        d0 = grad_at(th0)
        th1 = th0 + l0 * unit(d0)
        d1 = (1 - e1) * d0 + e1 * grad_at(th1 + (1 - e1) / e1 * (th1 - th0))
        th2 = th1 + l1 * unit(d1)
    else:
        d0 = grad_at(th0)
        th1 = th0 + l0 * unit(d0)
        q = float(torch.rand((), generator=torch.Generator().manual_seed(3)))
        from optrepro.rl.policy import set_flat
        set_flat(rparams, q * th1 + (1 - q) * th0)
        v = hvp_estimate(ref, rparams, fixed[:1], gamma, th1 - th0)
        d1 = (1 - e1) * (d0 + v) + e1 * grad_at(th1)
        th2 = th1 + l1 * unit(d1)
    torch.testing.assert_close(flat(params).detach(), th2, rtol=1e-5, atol=1e-6)
    assert (th2 - th0).norm() > 0


def test_schedules():
    assert schedule("nharpg", 0, 0.1) == (1.0, 0.1)
    eta, lr = schedule("npg_igt", 8, 0.1)
    assert eta == pytest.approx(0.2 ** 0.8) and lr == pytest.approx(0.1 * 0.2 ** 0.6)
    assert np.isclose(schedule("npg", 2, 1.0)[1], 0.5 ** 0.5)
