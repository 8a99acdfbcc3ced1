"""common.rl.preference and spo_2024's updates against closed forms:
- the LP's Minimax Winner: uniform for odd cycles, (2, 1, 4) / 7 for the weighted 3-cycle (a
  3-cycle's winner is proportional to the opposite edges' margins), the best response for a
  transitive game; the game value is 1/2 and the winner's exploitability is 0, and every pure
  response of an intransitive game is exploitable;
- Bradley-Terry recovers the utilities that generated the comparisons;
- SPO's win fractions and REINFORCE gradient are the literal formulas."""
import numpy as np
import pytest

from optrepro.errors import ConfigError
from optrepro.papers.spo_2024.method import spo_exact, win_fractions
from optrepro.rl.preference import (exploitability, fit_bradley_terry, minimax_winner, preference_matrix,
                                    sample_preferences)

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("kind,k,want", [
    ("cyclic", 3, np.full(3, 1 / 3)),
    ("cyclic", 7, np.full(7, 1 / 7)),
    ("rps", 3, np.array([2, 1, 4]) / 7),
    ("transitive", 5, np.eye(5)[0]),
])
def test_minimax_winner_closed_forms(kind, k, want):
    P = preference_matrix(kind, k, margin=0.4)
    p, value = minimax_winner(P)
    np.testing.assert_allclose(p, want, atol=1e-8)
    assert value == pytest.approx(0.5, abs=1e-9)
    assert exploitability(P, p) == pytest.approx(0.0, abs=1e-9)


def test_random_game_winner_is_an_equilibrium_and_pure_responses_are_exploitable():
    P = preference_matrix("random", 5, seed=0, margin=0.4)
    p, _ = minimax_winner(P)
    assert np.all(P @ p <= 0.5 + 1e-9)  # no response beats the winner
    for kind, k in (("rps", 3), ("cyclic", 5), ("random", 5)):
        Q = preference_matrix(kind, k, seed=0)
        assert min(exploitability(Q, e) for e in np.eye(k)) > 0.02


def test_bradley_terry_recovers_generating_utilities():
    P = preference_matrix("transitive", 4, margin=0.4)
    w, l = sample_preferences(P, 200_000, np.random.default_rng(0))
    u = fit_bradley_terry(w, l, 4)
    true = 0.4 * np.arange(3, -1, -1.0)
    np.testing.assert_allclose(u, true - true.mean(), atol=0.02)


def test_win_fractions_are_each_pairs_single_outcome():
    P = preference_matrix("transitive", 3, margin=0.5)
    P = np.where(P > 0.5, 1.0, np.where(P < 0.5, 0.0, 0.5))  # deterministic except ties
    np.fill_diagonal(P, 0.5)
    a = np.array([0, 1, 2, 2])
    f = win_fractions(P, a, np.random.default_rng(0))
    np.testing.assert_allclose(f[:2], [1.0, 2 / 3])  # 0 beats all three; 1 beats the two 2s only
    assert f[2] + f[3] == pytest.approx(1 / 3)  # the 2s lose to 0 and 1 and split their one tie


def test_exact_self_play_is_multiplicative_weights_on_win_rates():
    P = preference_matrix("rps", 3, margin=0.4)
    last, avg = spo_exact(P, 2, 0.5)
    pi0 = np.full(3, 1 / 3)
    theta1 = 0.5 * P @ pi0
    pi1 = np.exp(theta1) / np.exp(theta1).sum()
    np.testing.assert_allclose(avg, (pi0 + pi1) / 2)
    theta2 = theta1 + 0.5 * P @ pi1
    np.testing.assert_allclose(last, np.exp(theta2) / np.exp(theta2).sum())


@pytest.mark.parametrize("kind,k", [("cyclic", 4), ("rps", 5), ("nope", 3)])
def test_bad_games_are_config_errors(kind, k):
    with pytest.raises(ConfigError):
        preference_matrix(kind, k)
