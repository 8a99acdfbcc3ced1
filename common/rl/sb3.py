"""Stable-Baselines3 / sb3-contrib baselines under our protocol: the same env construction and seeds
(common.rl.make_env), the same network sizes, evaluated by the same Evaluator on the same step grid,
with steps/sec measured the same way (training wall time minus evaluation time)."""
from __future__ import annotations

import time

from optrepro.errors import ConfigError
from optrepro.rl import check_env, eval_seed, make_env
from optrepro.rl.onpolicy import Evaluator

ALGOS = {"ppo": ("stable_baselines3", "PPO", ("discrete", "box")),
         "a2c": ("stable_baselines3", "A2C", ("discrete", "box")),
         "sac": ("stable_baselines3", "SAC", ("box",)),
         "trpo": ("sb3_contrib", "TRPO", ("discrete", "box"))}


def algo_class(name: str):
    import importlib
    if name not in ALGOS:
        raise ConfigError(f"SB3 baseline '{name}' unknown; valid: {', '.join(ALGOS)}")
    mod, cls, _ = ALGOS[name]
    return getattr(importlib.import_module(mod), cls)


def check_sb3(cfg, name: str) -> None:
    algo_class(name)
    check_env(cfg.env, ALGOS[name][2], f"SB3 {name.upper()}")


def build_sb3(cfg, name: str, **kwargs):
    """An SB3 model on cfg.env with cfg.n_envs envs seeded cfg.seed + i, tanh MLPs of cfg.hidden for
    actor and critic (separate, as in our ActorCritic)."""
    import torch
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv
    venv = DummyVecEnv([lambda i=i: Monitor(make_env(cfg.env, cfg.seed + i)) for i in range(cfg.n_envs)])
    hidden = list(cfg.hidden)
    policy_kwargs = {"net_arch": dict(pi=hidden, vf=hidden) if name != "sac" else dict(pi=hidden, qf=hidden),
                     "activation_fn": {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[cfg.activation]}
    if name != "sac":
        policy_kwargs["log_std_init"] = cfg.log_std_init
    return algo_class(name)("MlpPolicy", venv, seed=cfg.seed, device="cpu", policy_kwargs=policy_kwargs, **kwargs)


def train_sb3(cfg, ctx, name: str, **kwargs) -> dict:
    """Train an SB3 baseline for cfg.total_steps; same outputs as common.rl.onpolicy.train."""
    from stable_baselines3.common.callbacks import BaseCallback
    ctx.no_checkpoint("SB3's learn() is one call with its own state: a killed SB3 baseline row restarts")
    model = build_sb3(cfg, name, **kwargs)
    ev = Evaluator(cfg, ctx, make_env(cfg.env, eval_seed(cfg.seed)))
    act = lambda o: model.predict(o, deterministic=True)[0]
    bar = ctx.progress(cfg.total_steps)

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            bar.update(self.training_env.num_envs)
            return True

        def _on_rollout_start(self) -> None:  # after the previous update, as in our loop
            ev.maybe(self.num_timesteps, act)

    t0 = time.perf_counter()
    model.learn(cfg.total_steps, callback=Eval())
    wall = time.perf_counter() - t0
    ev.maybe(max(model.num_timesteps, ev.grid[-1] if ev.grid else 0), act)
    out = ev.summary(model.num_timesteps, wall)
    eps = [e["r"] for e in model.ep_info_buffer][-10:]
    out["train_return"] = float(sum(eps) / len(eps)) if eps else float("nan")
    return out
