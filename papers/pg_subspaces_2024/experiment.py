"""pg_subspaces_2024: one row = one environment, one seed. Stable-Baselines3's PPO trains (the reference
implementation, common.rl.sb3); at chosen rollouts, on the rollout buffer just collected (before the
update), the exact Hessians of PPO's actor loss (the clipped surrogate, at ratio 1) and critic loss
(mean squared error to the returns) over the actor's and the critic's parameters give each network's
top-k curvature subspace (common.rl.subspace). Reported, for k = 10 and 100:
- `{net}_frac{k}`: the share of the gradient's squared norm inside the subspace, mean over the
  checkpoints (a random subspace gets k / n: `{net}_random{k}`);
- `{net}_overlap{k}`: the overlap of the first checkpoint's subspace with the last one's (1: the same;
  k / n for random ones), and `{net}_overlap_gain{k}` = overlap / (k / n)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from optrepro.errors import ConfigError
from optrepro.rl.onpolicy import OnPolicyConfig
from optrepro.rl.sb3 import build_sb3, check_sb3
from optrepro.rl.subspace import gradient_fraction, hessian_and_grad, overlap, top_subspace

NETS = {"actor": ("mlp_extractor.policy_net.", "action_net.", "log_std"),
        "critic": ("mlp_extractor.value_net.", "value_net.")}


@dataclass
class Config(OnPolicyConfig):
    env: str = "Pendulum-v1"
    total_steps: int = 40_960
    n_envs: int = 4
    n_steps: int = 512
    hidden: list = field(default_factory=lambda: [32, 32])
    batch_size: int = 64
    n_epochs: int = 10
    lr: float = 3e-4
    checkpoints: list = field(default_factory=lambda: [2, 10, 20])
    """Rollouts (1-based) at which the Hessians are computed, before that rollout's update."""
    ks: list = field(default_factory=lambda: [10, 100])


def preflight(cfg: Config) -> None:
    check_sb3(cfg, "ppo")
    rollouts = cfg.total_steps // (cfg.n_envs * cfg.n_steps)
    if len(cfg.checkpoints) < 2 or sorted(set(cfg.checkpoints)) != list(cfg.checkpoints) or \
            not all(1 <= c <= rollouts for c in cfg.checkpoints):
        raise ConfigError(f"checkpoints must be at least two increasing rollouts in 1..{rollouts}, got {cfg.checkpoints}")
    if not cfg.ks or any(k < 1 for k in cfg.ks):
        raise ConfigError(f"ks must be positive subspace sizes, got {cfg.ks}")


class _Evaluate(nn.Module):
    """forward(obs, actions) = the policy's evaluate_actions, so torch.func can call it with given parameters."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, obs, actions):
        return self.policy.evaluate_actions(obs, actions)


def analyse(model) -> dict:
    """Per network: (gradient [n], Hessian [n, n]) of its PPO loss on the current rollout buffer."""
    buf = model.rollout_buffer
    data = next(buf.get(batch_size=buf.buffer_size * buf.n_envs))
    obs, actions = data.observations, data.actions  # float32: SB3 casts observations to float32 anyway
    if model.action_space.__class__.__name__ == "Discrete":
        actions = data.actions.long().flatten()
    adv = data.advantages
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    old, returns = data.old_log_prob, data.returns
    wrap = _Evaluate(model.policy)
    out = {}
    for net, prefixes in NETS.items():
        names = [k for k, _ in wrap.named_parameters() if k.removeprefix("policy.").startswith(prefixes)]

        def loss_of(params, net=net):
            values, logp, _ = torch.func.functional_call(wrap, params, (obs, actions))
            if net == "critic":
                return (returns - values.flatten()).pow(2).mean()
            ratio = torch.exp(logp - old)
            clipped = torch.clamp(ratio, 1 - 0.2, 1 + 0.2)
            return -torch.min(adv * ratio, adv * clipped).mean()
        _, g, H = hessian_and_grad(wrap, names, loss_of)
        out[net] = (g.double(), H.double())
    return out


def run(cfg: Config, ctx) -> dict:
    from stable_baselines3.common.callbacks import BaseCallback
    ctx.no_checkpoint("SB3's learn() is one call with its own state: a killed run restarts")
    model = build_sb3(cfg, "ppo", n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
                      learning_rate=cfg.lr, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda)
    probes: dict = {net: [] for net in NETS}  # per net, one (n, {k: subspace}, {k: gradient share}) per checkpoint
    counter = {"rollout": 0}

    class Probe(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            counter["rollout"] += 1
            if counter["rollout"] in cfg.checkpoints:
                for net, (g, H) in analyse(self.model).items():
                    subs = {k: top_subspace(H, k) for k in cfg.ks}
                    fracs = {k: gradient_fraction(v, g) for k, v in subs.items()}
                    probes[net].append((g.numel(), subs, fracs))
                    ctx.log(counter["rollout"], **{f"{net}_frac{k}": f for k, f in fracs.items()})

    model.learn(total_timesteps=cfg.total_steps, callback=Probe())
    result = {}
    for net, seen in probes.items():
        n, first, last = seen[0][0], seen[0][1], seen[-1][1]
        result[f"{net}_n"] = float(n)
        for k in cfg.ks:
            result[f"{net}_frac{k}"] = sum(f[k] for _, _, f in seen) / len(seen)
            result[f"{net}_overlap{k}"] = overlap(first[k], last[k])
            result[f"{net}_random{k}"] = k / n
            result[f"{net}_overlap_gain{k}"] = result[f"{net}_overlap{k}"] / (k / n)
    rets = [ep["r"] for ep in model.ep_info_buffer]
    result["episode_return"] = float(sum(rets) / len(rets)) if rets else float("nan")
    ctx.log(counter["rollout"], **result)
    return result
