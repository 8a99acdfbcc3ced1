"""Self-Play Preference Optimization (SPO; Swamy, Dann, Kidambi, Wu and Agarwal, ICML 2024), on a
preference game (common.rl.preference).

SPO needs no reward model: the policy plays against itself. Each iteration draws a batch of N
responses from the current policy, has every pair compared once by the (noisy) preference, and
rewards each response with the fraction of its comparisons it won; any reinforcement-learning
update on those rewards follows. The paper shows this is a no-regret self-play whose average
iterate converges to the Minimax Winner, intransitive preferences included. Two forms here:

- `spo_exact`: the full-information limit (the expected win rate against the current policy,
  r_t = P pi_t, as the reward), with the multiplicative-weights / soft policy iteration update
  theta += eta r_t, pi = softmax(theta);
- `spo_sampled`: the algorithm as run, REINFORCE with the batch-mean baseline on the sampled win
  fractions, for a softmax policy over the K responses.

`reward_model`: the RLHF route for comparison. The same number of preference queries, on uniformly
drawn pairs, fit a Bradley-Terry reward; the policy is the KL-regularised optimum of that reward
against the uniform reference, pi ~ exp(r / tau)."""
from __future__ import annotations

import numpy as np

from optrepro.rl.preference import fit_bradley_terry, sample_preferences, softmax


def spo_exact(P: np.ndarray, iters: int, eta: float):
    """(last policy, average policy) after `iters` multiplicative-weights steps on r_t = P pi_t."""
    k = len(P)
    theta, avg = np.zeros(k), np.zeros(k)
    for _ in range(iters):
        pi = softmax(theta)
        avg += pi
        theta += eta * (P @ pi)
    return softmax(theta), avg / iters


def win_fractions(P: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each of the N responses' fraction of wins when every pair (i < j) is compared once, the
    outcome drawn from P."""
    n = len(actions)
    wins = np.zeros(n)
    i, j = np.triu_indices(n, 1)
    first = rng.random(len(i)) < P[actions[i], actions[j]]
    np.add.at(wins, i, first)
    np.add.at(wins, j, ~first)
    return wins / (n - 1)


def spo_sampled(P: np.ndarray, iters: int, batch: int, lr: float, rng: np.random.Generator):
    """(last, average) policy of SPO with REINFORCE: per iteration `batch` responses from pi, win
    fractions as rewards, gradient of the mean log-probability times (reward - batch mean)."""
    k = len(P)
    theta, avg = np.zeros(k), np.zeros(k)
    for _ in range(iters):
        pi = softmax(theta)
        avg += pi
        a = rng.choice(k, size=batch, p=pi)
        adv = win_fractions(P, a, rng)
        adv = adv - adv.mean()
        grad = np.bincount(a, adv, k) / batch - pi * adv.sum() / batch  # sum_i adv_i (e_{a_i} - pi) / N
        theta += lr * grad
    return softmax(theta), avg / iters


def reward_model(P: np.ndarray, queries: int, tau: float, rng: np.random.Generator):
    """(policy, utilities): Bradley-Terry fitted to `queries` comparisons of uniform pairs; pi ~ exp(u / tau)."""
    w, l = sample_preferences(P, queries, rng)
    u = fit_bradley_terry(w, l, len(P))
    return softmax(u / tau), u
