"""Shared reinforcement-learning pieces: seeded environment construction with clear errors
(`make_env`, `require_action_space`, `require_vector_obs`, `check_env`), episodes (`rollout`,
`evaluate`, `evaluate_deterministic`), and the
policy-gradient estimators papers share (`common.rl.estimators`). Importing it registers the
known-answer environments in envs/ (`optrepro/LQR-v0`, `optrepro/TabularMDP-v0`)."""
from __future__ import annotations

import numpy as np

import optrepro.envs  # noqa: F401  (registers optrepro/* ids)
from optrepro.config import closest
from optrepro.errors import ConfigError


def make_env(env_id: str, seed: int | None = None, **kwargs):
    """gymnasium.make with its spaces seeded; an unknown id is a ConfigError (exit 2) naming the
    closest registered ids, raised before any training."""
    import gymnasium as gym
    if env_id not in gym.registry:
        raise ConfigError(f"environment '{env_id}' is not registered{closest(env_id, gym.registry.keys())}; "
                          "optrepro ids: " + ", ".join(optrepro.envs.IDS))
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


def require_vector_obs(env, algo: str) -> None:
    """The MLP policies need Box observations; anything else is a ConfigError (exit 2)."""
    import gymnasium as gym
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ConfigError(f"{algo} uses an MLP policy on vector observations; {env.spec.id if env.spec else env} "
                          f"has a {type(env.observation_space).__name__} observation space")


def check_env(env_id: str, kinds: tuple[str, ...], algo: str) -> None:
    """Refuse, before any training, an env id that does not exist, an action space `algo` cannot
    handle (`kinds`: 'discrete', 'box') or non-vector observations."""
    env = make_env(env_id)
    try:
        require_action_space(env, kinds, algo)
        require_vector_obs(env, algo)
    finally:
        env.close()


def eval_seed(run_seed: int) -> int:
    """First episode seed of the evaluation episodes of run `run_seed` (disjoint from training seeds)."""
    return 10_000 + 100 * run_seed


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


def evaluate_deterministic(policy, env_id: str, episodes: int, run_seed: int) -> float:
    """Mean return of `policy.act(obs, deterministic=True)` on a fresh env over the run's evaluation seeds."""
    return evaluate(lambda o: policy.act(o, deterministic=True), make_env(env_id), episodes, eval_seed(run_seed))[0]
