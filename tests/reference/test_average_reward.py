"""common.rl.average_reward against closed forms and finite differences:
- a two-state chain's stationary distribution and average reward in closed form;
- the gridworld's optimal average reward (relative value iteration) equals the best of all
  deterministic policies' exact average rewards on a 2x2 grid (256 policies), and is 1 / the
  shortest expected cycle on a slip-free grid;
- the exact softmax policy gradient equals central finite differences of eta(theta);
- the MLMC estimator's expectation over J equals the mean of t_max samples (enumerated exactly)."""
import itertools

import numpy as np
import pytest

from optrepro.envs.gridworld import grid_mdp
from optrepro.rl.average_reward import (average_reward, exact_gradient, mlmc_weights, optimal_average_reward,
                                        rollout_length, softmax_policy, stationary)

pytestmark = pytest.mark.reference


def test_two_state_chain_closed_form():
    p, q = 0.2, 0.05  # leave state 0 w.p. p, state 1 w.p. q
    P = np.array([[[1 - p, p]], [[q, 1 - q]]])  # one action
    R = np.array([[1.0], [3.0]])
    d = stationary(P[:, 0, :])
    np.testing.assert_allclose(d, [q / (p + q), p / (p + q)])
    assert average_reward(P, R, np.ones((2, 1))) == pytest.approx((q * 1 + p * 3) / (p + q))


def test_optimal_average_reward_is_the_best_deterministic_policy():
    P, R = grid_mdp(2, 0.2)
    best = max(average_reward(P, R, np.eye(4)[list(a)]) for a in itertools.product(range(4), repeat=4))
    assert optimal_average_reward(P, R) == pytest.approx(best, rel=1e-8)
    P0, R0 = grid_mdp(5, 0.0)  # no slip: 8 moves to the goal, then one action there: a 9-step cycle
    assert optimal_average_reward(P0, R0) == pytest.approx(1 / 9)


def test_exact_gradient_matches_finite_differences():
    P, R = grid_mdp(3, 0.1)
    theta = np.random.default_rng(0).normal(size=R.shape)
    g = exact_gradient(P, R, theta)
    eps = 1e-5
    for s, a in [(0, 0), (0, 3), (4, 1), (7, 3), (8, 2)]:
        tp, tm = theta.copy(), theta.copy()
        tp[s, a] += eps
        tm[s, a] -= eps
        fd = (average_reward(P, R, softmax_policy(tp)) - average_reward(P, R, softmax_policy(tm))) / (2 * eps)
        assert g[s, a] == pytest.approx(fd, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("t_max", [2, 8, 64])
def test_mlmc_expectation_is_the_t_max_mean(t_max):
    x = np.random.default_rng(1).normal(size=4 * t_max)
    jmax = int(np.log2(t_max))
    expect = 0.0
    for J in range(1, jmax + 1):
        expect += 0.5 ** J * (mlmc_weights(J, t_max) @ x[: rollout_length(J, t_max)])
    expect += 0.5 ** jmax * x[0]  # P(J > jmax) = 2^-jmax: one sample
    assert expect == pytest.approx(x[:t_max].mean())
    assert rollout_length(jmax + 1, t_max) == 1 and len(mlmc_weights(jmax + 1, t_max)) == 1
