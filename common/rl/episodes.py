r"""Whole-episode policy-gradient estimators (REINFORCE / G(PO)MDP and its Hessian), for the papers
that sample a few trajectories per iteration instead of fixed-length rollouts.

For trajectories τ_k = (s_t, a_t, r_t)_{t<T_k}, k = 1..N, with w_t = γ^t G_t = Σ_{t'>=t} γ^{t'} r_{t'}:

    Φ(θ)     = (1/N) Σ_k Σ_t log π_θ(a_t|s_t) (w_t - b_t)            surrogate: ∇Φ = the G(PO)MDP estimate of ∇J
    B(θ) u   = (1/N) Σ_k [ ∇Φ_k (∇ log p_θ(τ_k) · u) + ∇²Φ_k u ]     unbiased estimate of ∇²J u
                                                                        (Shen et al. 2019; HARPG's v_t)

with Φ_k the episode's term of Φ (no baseline) and log p_θ(τ_k) = Σ_t log π_θ(a_t|s_t). The
Hessian estimate follows from differentiating E_τ[∇Φ(τ, θ)] = ∇J(θ) once more. `hvp_estimate`
computes it with three backward passes for all episodes at once: the per-episode directional
derivatives ∇ log p(τ_k) · u by the double-vjp trick, then one gradient of Σ_k c_k Φ_k, then the
Hessian-vector product of Φ.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from optrepro.rl.estimators import discounted_returns
from optrepro.rl.policy import flat


@dataclass
class Episode:
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: np.ndarray

    @property
    def ret(self) -> float:
        """Undiscounted return."""
        return float(self.rewards.sum())


def sample_episodes(env, policy, n: int) -> list[Episode]:
    """n episodes of the stochastic policy (the env is seeded once by its first reset)."""
    out = []
    for _ in range(n):
        obs, _ = env.reset()
        O, A, R, done = [], [], [], False
        while not done:
            o = torch.as_tensor(obs, dtype=torch.float32)
            with torch.no_grad():
                a = policy.dist(o.unsqueeze(0)).sample()[0]
            O.append(o)
            A.append(a)
            obs, r, term, trunc, _ = env.step(policy.env_action(a.numpy()))
            R.append(float(r))
            done = term or trunc
        out.append(Episode(torch.stack(O), torch.stack(A), np.asarray(R)))
    return out


def _flatten(policy, episodes, gamma):
    obs = torch.cat([e.obs for e in episodes])
    act = torch.cat([e.actions for e in episodes])
    idx = torch.cat([torch.full((len(e.rewards),), k) for k, e in enumerate(episodes)])
    w = torch.as_tensor(np.concatenate([discounted_returns(e.rewards, gamma) * gamma ** np.arange(len(e.rewards))
                                        for e in episodes]))
    t = torch.cat([torch.arange(len(e.rewards)) for e in episodes])
    logp = policy.dist(obs).log_prob(act)
    return logp, idx, w.to(logp.dtype), t


def gpomdp_surrogate(policy, episodes: list[Episode], gamma: float, baseline: bool = False) -> torch.Tensor:
    """Φ(θ): its gradient is the G(PO)MDP estimate of ∇J. baseline=True subtracts b_t, the mean of w_t
    over the episodes (an episode that has ended counts as 0), which keeps the estimate unbiased only
    up to the O(1/N) dependence of b on each episode."""
    logp, _, w, t = _flatten(policy, episodes, gamma)
    if baseline:
        b = torch.zeros(int(t.max()) + 1, dtype=w.dtype).index_add_(0, t, w) / len(episodes)
        w = w - b[t]
    return (logp * w).sum() / len(episodes)


def hvp_estimate(policy, params: list[torch.Tensor], episodes: list[Episode], gamma: float,
                 u: torch.Tensor) -> torch.Tensor:
    """B(θ) u (flat), the unbiased estimate of ∇²J(θ) u from the episodes."""
    logp, idx, w, _ = _flatten(policy, episodes, gamma)
    n = len(episodes)
    s = torch.zeros(n, dtype=logp.dtype).index_add(0, idx, logp)     # log p(τ_k) up to dynamics
    v = torch.zeros(n, dtype=logp.dtype, requires_grad=True)
    g_s = flat(torch.autograd.grad((s * v).sum(), params, create_graph=True))
    c = torch.autograd.grad(g_s @ u, v, retain_graph=True)[0].detach()   # c_k = ∇ log p(τ_k) · u
    term1 = flat(torch.autograd.grad((logp * w * c[idx]).sum() / n, params, retain_graph=True))
    g_phi = flat(torch.autograd.grad((logp * w).sum() / n, params, create_graph=True))
    term2 = flat(torch.autograd.grad(g_phi @ u, params))
    return term1 + term2


class EpisodeLog:
    """Return against the number of sampled trajectories, the x-axis of the REINFORCE-family papers.
    `record` takes the on-policy episodes of one iteration; `summary` gives auc (mean return over
    all iterations, by trajectory) and final (mean over the last `tail` fraction of trajectories)."""

    def __init__(self, ctx, total: int, log_every: int = 1, tail: float = 0.1):
        self.ctx, self.total, self.log_every, self.tail = ctx, total, log_every, tail
        self.sampled, self.returns, self._it, self.last = 0, [], 0, float("nan")

    def done(self) -> bool:
        return self.sampled >= self.total

    def iterations(self, state: dict):
        """The resumable loop over iterations until the trajectory budget is spent: the checkpoint
        holds `state` (the policy, optimizers, environments, generators) and this log."""
        return self.ctx.steps(self.total, {**state, "episode_log": self}, done=self.done)

    def record(self, episodes: list[Episode], sampled: int, **extra) -> None:
        self.sampled += sampled
        self.returns += [e.ret for e in episodes]
        self.last = float(np.mean([e.ret for e in episodes]))
        self._it += 1
        if self._it % self.log_every == 0 or self.done():
            self.ctx.log(step=self.sampled, train_return=self.last, **extra)

    def summary(self) -> dict:
        r = np.asarray(self.returns)
        k = max(1, int(round(self.tail * len(r))))
        return {"auc": float(r.mean()), "final": float(r[-k:].mean()), "trajectories": float(self.sampled),
                "train_return": self.last}
