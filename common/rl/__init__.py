"""Shared reinforcement-learning pieces: seeded environment construction with clear errors
(`make_env`, `require_action_space`), episodes (`rollout`, `evaluate`), and the
policy-gradient estimators papers share (`common.rl.estimators`). Importing it registers the
known-answer environments in envs/ (`optrepro/LQR-v0`, `optrepro/TabularMDP-v0`)."""
from __future__ import annotations

import numpy as np

import envs  # noqa: F401  (registers optrepro/* ids)
from common.config import closest
from common.errors import ConfigError


def make_env(env_id: str, seed: int | None = None, **kwargs):
    """gymnasium.make with its spaces seeded; an unknown id is a ConfigError (exit 2) naming the
    closest registered ids, raised before any training."""
    import gymnasium as gym
    if env_id not in gym.registry:
        raise ConfigError(f"environment '{env_id}' is not registered{closest(env_id, gym.registry.keys())}; "
                          "optrepro ids: " + ", ".join(envs.IDS))
    try:
        env = gym.make(env_id, **kwargs)
    except (gym.error.DependencyNotInstalled, ImportError) as e:
        raise ConfigError(f"environment '{env_id}' needs a package that is not installed: {e}") from None
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    return env


def require_action_space(env, kinds: tuple[str, ...], algo: str) -> str:
    """'discrete' or 'box' for the env's action space; ConfigError if `algo` supports neither."""
    import gymnasium as gym
    space = env.action_space
    kind = "discrete" if isinstance(space, gym.spaces.Discrete) else "box" if isinstance(space, gym.spaces.Box) else \
        type(space).__name__
    if kind not in kinds:
        raise ConfigError(f"{algo} handles {' and '.join(kinds)} action spaces; {env.spec.id if env.spec else env} "
                          f"has a {kind} one")
    return kind


def rollout(env, act, seed: int | None = None) -> tuple[list, list, list]:
    """One episode: (observations s_0..s_{T-1}, actions, rewards) with a_t = act(s_t)."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, done = [], [], [], False
    while not done:
        a = act(obs)
        observations.append(obs)
        actions.append(a)
        obs, r, term, trunc, _ = env.step(a)
        rewards.append(float(r))
        done = term or trunc
    return observations, actions, rewards


def evaluate(policy, env, episodes: int = 10, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the undiscounted episode return of `policy(obs) -> action` over `episodes`
    episodes, seeds seed, seed+1, ... (pass a deterministic or a sampling policy as needed)."""
    rets = [sum(rollout(env, policy, seed + k)[2]) for k in range(episodes)]
    return float(np.mean(rets)), float(np.std(rets))
