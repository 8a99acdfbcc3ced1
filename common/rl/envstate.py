"""The state of a gymnasium environment, for checkpoints: what a resumed rollout needs to continue
exactly where it stopped (tests/reference/test_rl_envs.py steps a restored copy beside the original).

Every layer of the wrapper chain keeps its counters and flags (TimeLimit's elapsed steps,
OrderEnforcing's has-reset); the unwrapped env keeps its plain attributes (classic control's `state`,
the optrepro envs' arrays) and its RNG; a MuJoCo env also keeps the simulator's qpos, qvel, act,
ctrl, time and the solver's warm start."""
from __future__ import annotations

import numpy as np
import torch

_SIMPLE = (bool, int, float, str, type(None))
_MJ_FIELDS = ("qpos", "qvel", "act", "ctrl", "qacc_warmstart", "mocap_pos", "mocap_quat", "qfrc_applied",
              "xfrc_applied")


def _layers(env):
    layer = env
    while True:
        yield layer
        nxt = getattr(layer, "env", None)
        if nxt is None or layer is layer.unwrapped:
            return
        layer = nxt


def _plain(v):
    """A weights_only-safe copy of an attribute that is state, or raise TypeError."""
    if isinstance(v, _SIMPLE):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.dtype != object:
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(v).copy())}
    if isinstance(v, np.random.Generator):
        return {"__np_gen__": v.bit_generator.state}
    if isinstance(v, (list, tuple)) and all(isinstance(x, _SIMPLE + (np.generic,)) for x in v):
        return {"__seq__": [x.item() if isinstance(x, np.generic) else x for x in v],
                "tuple": isinstance(v, tuple)}
    raise TypeError


def _restore(cur, saved):
    if isinstance(saved, dict) and "__ndarray__" in saved:
        return saved["__ndarray__"].numpy().copy()
    if isinstance(saved, dict) and "__np_gen__" in saved:
        from optrepro.checkpoint import np_generator
        return np_generator(cur, saved["__np_gen__"])
    if isinstance(saved, dict) and "__seq__" in saved:
        return tuple(saved["__seq__"]) if saved["tuple"] else list(saved["__seq__"])
    return saved


def env_state(env) -> dict:
    layers = []
    for layer in _layers(env):
        d = {}
        for k, v in vars(layer).items():
            if k in ("env", "_saved_kwargs", "_previous_data") or k.startswith("_cached"):
                continue
            try:
                d[k] = _plain(v)
            except TypeError:
                pass
        layers.append(d)
    out = {"layers": layers}
    data = getattr(env.unwrapped, "data", None)
    if data is not None and hasattr(data, "qpos"):
        out["mujoco"] = {f: torch.from_numpy(np.array(getattr(data, f))) for f in _MJ_FIELDS if hasattr(data, f)}
        out["mujoco_time"] = float(data.time)
    return out


def set_env_state(env, st: dict) -> None:
    layers = list(_layers(env))
    if len(layers) != len(st["layers"]):
        raise ValueError(f"the environment's wrapper chain changed ({len(st['layers'])} layers saved, {len(layers)} now)")
    for layer, d in zip(layers, st["layers"]):
        for k, v in d.items():
            setattr(layer, k, _restore(getattr(layer, k, None), v))
    if "mujoco" in st:
        data = env.unwrapped.data
        for f, v in st["mujoco"].items():
            getattr(data, f)[...] = v.numpy()
        data.time = st["mujoco_time"]
