r"""Actor-critic networks for discrete and box action spaces, laid out like Stable-Baselines3's
`ActorCriticPolicy` with separate actor and critic bodies, so SB3 weights copy over one to one
(`load_sb3`). The algorithms here can then be checked against SB3 on the same parameters.

    actor:  h = body_pi(s),  logits = W_a h + b_a            (Categorical)
                             mean   = W_a h + b_a, std = exp(log_std)   (diagonal Gaussian, state-independent std)
    critic: V(s) = w_v^T body_vf(s) + b_v

Initialization as in SB3 and the PPO/TRPO baselines: orthogonal, gain sqrt(2) in the bodies, 0.01 on
the action head, 1 on the value head, zero biases.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _body(n_in: int, hidden, act) -> nn.Sequential:
    layers, d = [], n_in
    for h in hidden:
        layers += [nn.Linear(d, h), ACTIVATIONS[act]()]
        d = h
    return nn.Sequential(*layers)


class DiagGaussian(Normal):
    """Independent Gaussian whose log_prob and entropy sum over action dimensions."""

    def log_prob(self, value):
        return super().log_prob(value).sum(-1)

    def entropy(self):
        return super().entropy().sum(-1)


def kl(p, q) -> torch.Tensor:
    """KL(p || q) per state for two distributions of the same kind (summed over action dims)."""
    if isinstance(p, Categorical):
        return (p.probs * (p.logits - q.logits)).sum(-1)
    return (torch.log(q.scale / p.scale) + (p.scale ** 2 + (p.loc - q.loc) ** 2) / (2 * q.scale ** 2) - 0.5).sum(-1)


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, action_space, hidden=(64, 64), activation: str = "tanh",
                 log_std_init: float = 0.0):
        super().__init__()
        import gymnasium as gym
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        self.pi_body, self.vf_body = _body(obs_dim, hidden, activation), _body(obs_dim, hidden, activation)
        last = hidden[-1] if hidden else obs_dim
        self.action_net, self.value_net = nn.Linear(last, n_out), nn.Linear(last, 1)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((n_out,), float(log_std_init)))
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32)
        for body in (self.pi_body, self.vf_body):
            for m in body:
                if isinstance(m, nn.Linear):
                    nn.init.orthogonal_(m.weight, math.sqrt(2))
                    nn.init.zeros_(m.bias)
        for m, g in ((self.action_net, 0.01), (self.value_net, 1.0)):
            nn.init.orthogonal_(m.weight, g)
            nn.init.zeros_(m.bias)

    @classmethod
    def for_env(cls, env, hidden=(64, 64), activation: str = "tanh", log_std_init: float = 0.0) -> "ActorCritic":
        return cls(int(np.prod(env.observation_space.shape)), env.action_space, tuple(hidden), activation, log_std_init)

    def actor_parameters(self) -> list[nn.Parameter]:
        ps = list(self.pi_body.parameters()) + list(self.action_net.parameters())
        return ps + ([self.log_std] if not self.discrete else [])

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.vf_body.parameters()) + list(self.value_net.parameters())

    def dist(self, obs: torch.Tensor):
        out = self.action_net(self.pi_body(obs))
        if self.discrete:
            return Categorical(logits=out)
        return DiagGaussian(out, self.log_std.exp().expand_as(out))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_net(self.vf_body(obs)).squeeze(-1)

    def env_action(self, a: np.ndarray) -> np.ndarray:
        """What the environment receives: the sampled action, clipped to the box (as SB3 does)."""
        return a if self.discrete else np.clip(a, self.low.numpy(), self.high.numpy())

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Action for one observation (no batch dimension): mode if deterministic, else a sample."""
        d = self.dist(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))
        a = (d.probs.argmax(-1) if self.discrete else d.loc) if deterministic else d.sample()
        a = a[0].numpy()
        return self.env_action(a)

    def load_sb3(self, sb3_policy) -> "ActorCritic":
        """Copy the weights of an SB3 ActorCriticPolicy with the same layout (separate networks)."""
        src = dict(sb3_policy.named_parameters())
        pairs = [(self.pi_body, "mlp_extractor.policy_net"), (self.vf_body, "mlp_extractor.value_net")]
        with torch.no_grad():
            for body, prefix in pairs:
                for name, p in body.named_parameters():
                    p.copy_(src[f"{prefix}.{name}"])
            for name, p in self.action_net.named_parameters():
                p.copy_(src[f"action_net.{name}"])
            for name, p in self.value_net.named_parameters():
                p.copy_(src[f"value_net.{name}"])
            if not self.discrete:
                self.log_std.copy_(src["log_std"])
        return self


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def set_flat(params, vec: torch.Tensor) -> None:
    """Write a flat vector into a list of parameters, in order."""
    i = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec[i:i + n].view_as(p))
            i += n


class LinearGaussian(nn.Module):
    """u = -K x + σ ε, ε ~ N(0, I): the policy class whose LQR cost and gradient optrepro/LQR-v0 knows
    exactly; K is the only parameter (σ fixed)."""

    discrete = False

    def __init__(self, K, sigma: float):
        super().__init__()
        self.K = nn.Parameter(torch.as_tensor(np.atleast_2d(K), dtype=torch.float32).clone())
        self.sigma = float(sigma)

    def dist(self, obs: torch.Tensor):
        mean = -obs @ self.K.T
        return DiagGaussian(mean, torch.full_like(mean, self.sigma))

    def env_action(self, a: np.ndarray) -> np.ndarray:
        return a


class TabularSoftmax(nn.Module):
    """π(a|s) ∝ exp θ[s, a] on a Discrete observation space: optrepro/TabularMDP-v0's policy class."""

    discrete = True

    def __init__(self, theta):
        super().__init__()
        self.theta = nn.Parameter(torch.as_tensor(np.asarray(theta), dtype=torch.float32).clone())

    def dist(self, obs: torch.Tensor):
        return Categorical(logits=self.theta[obs.long().reshape(-1)])

    def env_action(self, a: np.ndarray) -> int:
        return int(a)
