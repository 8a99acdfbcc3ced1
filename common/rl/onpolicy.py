r"""The on-policy loop the policy-gradient papers share: collect `n_steps` x `n_envs` transitions,
compute GAE advantages, hand the batch to the paper's `update`, evaluate on a fixed step grid.

Rollouts follow SB3's conventions so results are comparable with its PPO/TRPO on the same env:
an episode cut by a time limit is bootstrapped (r_T += γ V(s_T)), one ended by termination is not;
actions are sampled from the policy and clipped to the action box only when sent to the env.

Evaluation (the metric every table reports): the mean undiscounted return of `eval_episodes`
episodes of the deterministic policy (argmax / Gaussian mean) on a separate env, every
`eval_every` environment steps; `return` is the last evaluation, `auc` the mean over all of them.
`steps_per_sec` counts environment steps over the training wall time (collection + updates,
evaluation excluded), the same way for our algorithms and SB3's (common.rl.sb3).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError
from optrepro.rl import check_env, eval_seed, evaluate, make_env
from optrepro.rl.estimators import gae
from optrepro.rl.policy import ActorCritic


@dataclass
class OnPolicyConfig(BaseConfig):
    env: str = "CartPole-v1"
    """A gymnasium id (classic control, MuJoCo, or optrepro/*)."""
    total_steps: int = 50000
    """Environment steps of training (summed over the parallel envs)."""
    n_envs: int = 1
    n_steps: int = 2048
    """Steps per env per rollout; the batch is n_steps x n_envs."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    normalize_advantage: bool = True
    hidden: list = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    log_std_init: float = 0.0
    eval_every: int = 5000
    eval_episodes: int = 5


def check_onpolicy(cfg: OnPolicyConfig, kinds: tuple[str, ...], algo: str) -> None:
    """Everything that can be refused before training: env id, action space, sizes."""
    for k in ("total_steps", "n_envs", "n_steps", "eval_every", "eval_episodes"):
        if getattr(cfg, k) < 1:
            raise ConfigError(f"{k} must be >= 1, got {getattr(cfg, k)}")
    if not 0 < cfg.gamma <= 1 or not 0 <= cfg.gae_lambda <= 1:
        raise ConfigError(f"gamma must be in (0, 1] and gae_lambda in [0, 1]; got {cfg.gamma}, {cfg.gae_lambda}")
    if cfg.activation not in ("tanh", "relu"):
        raise ConfigError(f"activation must be tanh or relu, got '{cfg.activation}'")
    check_env(cfg.env, kinds, algo)


@dataclass
class Batch:
    obs: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    """advantages + values (the critic's regression target)."""


class Collector:
    """n_envs environments stepped in lock-step by one policy (SB3's DummyVecEnv, without the wrapper)."""

    def __init__(self, env_id: str, n_envs: int, seed: int, gamma: float, lam: float):
        self.envs = [make_env(env_id, seed + i) for i in range(n_envs)]
        self.obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(self.envs)]).astype(np.float32)
        self.gamma, self.lam = gamma, lam
        self.ep_ret = np.zeros(n_envs)
        self.finished: list[float] = []

    def collect(self, policy: ActorCritic, n_steps: int) -> Batch:
        n = len(self.envs)
        obs = np.zeros((n_steps, n) + self.obs.shape[1:], np.float32)
        rew, done, val, logp = (np.zeros((n_steps, n), np.float32) for _ in range(4))
        acts = []
        for t in range(n_steps):
            with torch.no_grad():
                o = torch.from_numpy(self.obs)
                d = policy.dist(o)
                a = d.sample()
                logp[t], val[t] = d.log_prob(a).numpy(), policy.value(o).numpy()
            a = a.numpy()
            acts.append(a)
            obs[t] = self.obs
            for i, env in enumerate(self.envs):
                o2, r, term, trunc, _ = env.step(policy.env_action(a[i]))
                self.ep_ret[i] += r
                if term or trunc:
                    if trunc and not term:
                        with torch.no_grad():
                            r += self.gamma * float(policy.value(torch.as_tensor(o2, dtype=torch.float32)))
                    self.finished.append(float(self.ep_ret[i]))
                    self.ep_ret[i] = 0.0
                    o2, _ = env.reset()
                rew[t, i], done[t, i] = r, float(term or trunc)
                self.obs[i] = o2
        with torch.no_grad():
            last = policy.value(torch.from_numpy(self.obs)).numpy()
        adv = np.stack([gae(rew[:, i], val[:, i], done[:, i], last[i], self.gamma, self.lam) for i in range(n)], 1)
        f = lambda x: torch.as_tensor(np.asarray(x)).reshape((n_steps * n,) + np.asarray(x).shape[2:])
        actions = f(np.stack(acts))
        return Batch(f(obs), actions.long() if policy.discrete else actions.float(), f(logp), f(val),
                     f(adv).float(), f(adv + val).float())


def build(cfg: OnPolicyConfig) -> tuple[ActorCritic, Collector, object]:
    """The policy (seeded by the run), the training collector and a separate evaluation env."""
    col = Collector(cfg.env, cfg.n_envs, cfg.seed, cfg.gamma, cfg.gae_lambda)
    policy = ActorCritic.for_env(col.envs[0], cfg.hidden, cfg.activation, cfg.log_std_init)
    return policy, col, make_env(cfg.env, eval_seed(cfg.seed))


def eval_grid(cfg) -> list[int]:
    """Environment steps at which every algorithm (ours and SB3's) is evaluated."""
    return list(range(cfg.eval_every, cfg.total_steps + 1, cfg.eval_every)) or [cfg.total_steps]


class Evaluator:
    """Evaluates a deterministic policy on the shared grid and logs `eval_return` per env step."""

    def __init__(self, cfg, ctx, env):
        self.cfg, self.ctx, self.env = cfg, ctx, env
        self.grid, self.returns, self.time = eval_grid(cfg), [], 0.0

    def maybe(self, step: int, act, **extra) -> None:
        while self.grid and step >= self.grid[0]:
            self.grid.pop(0)
            t = time.perf_counter()
            m, _ = evaluate(act, self.env, self.cfg.eval_episodes, seed=eval_seed(self.cfg.seed))
            self.time += time.perf_counter() - t
            self.returns.append(m)
            self.ctx.log(step=step, eval_return=m, **extra)

    def summary(self, steps: int, wall: float) -> dict:
        return {"return": self.returns[-1], "eval_return": self.returns[-1], "auc": float(np.mean(self.returns)),
                "steps_per_sec": steps / max(wall - self.time, 1e-9)}


def train(cfg: OnPolicyConfig, ctx, make_update) -> dict:
    """Run the on-policy loop; `make_update(policy)` returns update(batch) -> dict of floats (the paper's
    method, including its critic update), or (update, state): the objects the update keeps between
    iterations (optimizers, running statistics, generators), named, for the checkpoint. Returns
    return, auc, steps_per_sec and train_return (mean of the last 10 finished training episodes).

    One checkpointed step is one iteration (a rollout and its update); a resume continues with the
    environments exactly where they were (common.rl.envstate)."""
    policy, col, eval_env = build(cfg)
    made = make_update(policy)
    update, extra = made if isinstance(made, tuple) else (made, {})
    ev = Evaluator(cfg, ctx, eval_env)
    per_iter = cfg.n_steps * cfg.n_envs
    loop = {"steps": 0, "wall": 0.0}
    state = {"policy": policy, "collector": col, "evaluator": ev, "loop": loop, **extra}
    for _ in ctx.steps(-(-cfg.total_steps // per_iter), state):
        t0 = time.perf_counter()
        batch = col.collect(policy, cfg.n_steps)
        loop["steps"] += per_iter
        stats = update(batch)
        loop["wall"] += time.perf_counter() - t0
        recent = col.finished[-10:]
        t0 = time.perf_counter()
        ev.maybe(loop["steps"], lambda o: policy.act(o, deterministic=True), **stats,
                 **({"train_return": float(np.mean(recent))} if recent else {}))
        loop["wall"] += time.perf_counter() - t0
    out = ev.summary(loop["steps"], loop["wall"])
    out["train_return"] = float(np.mean(col.finished[-10:])) if col.finished else float("nan")
    return out


def minibatch_epochs(n: int, epochs: int, batch_size: int, step, gen: torch.Generator | None = None) -> list:
    """`epochs` passes over indices 0..n-1 in shuffled minibatches of `batch_size` (one randperm per
    epoch); `step(idx)` does one optimizer step and returns its statistics. Minibatches of fewer than
    2 samples are skipped (normalizing advantages needs 2). Returns the list of statistics."""
    out = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) >= 2:
                out.append(step(idx))
    return out


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params=None, max_grad_norm: float = 0.0) -> None:
    """zero_grad, backward, optional gradient-norm clipping over `params`, step."""
    opt.zero_grad()
    loss.backward()
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()


def fit_value(policy: ActorCritic, opt: torch.optim.Optimizer, batch: Batch, epochs: int, batch_size: int,
              gen: torch.Generator | None = None) -> float:
    """Regress V on the batch's returns: `epochs` passes of shuffled minibatches (MSE); mean loss."""
    def step(idx):
        loss = torch.nn.functional.mse_loss(policy.value(batch.obs[idx]), batch.returns[idx])
        optimizer_step(opt, loss)
        return loss.item()
    return float(np.mean(minibatch_epochs(len(batch.returns), epochs, batch_size, step, gen)))


def normalized(adv: torch.Tensor) -> torch.Tensor:
    return (adv - adv.mean()) / (adv.std() + 1e-8)
