"""Checkpoints a run can trust, and the resumable loop every long loop in the repository uses.

A checkpoint file is one header line, `OPTREPRO-CKPT1 <sha256 of the payload>`, then the payload:
`torch.save({"identity", "step", "state"})`, loadable with `weights_only=True`. It is written
atomically (temp file, fsync, rename). On reading, a file that is cut short, corrupted, in an older
format or made by another run (its identity: pid, table, row, seed, config hash; or a cache entry's
key) is set aside (renamed `<name>.bad-<time>`, with a warning naming both) and the loop starts over.

    for s in ctx.steps(total, {"model": model, "opt": opt, "loop": loop_vars}):
        ...  # one step; `s` runs 1..total, from the checkpoint's step + 1 when resuming

`steps` checkpoints every `every` steps, and on SIGTERM/SIGINT (then raises Interrupted). What it
saves is given by name: objects with state_dict/load_state_dict (modules, optimizers, schedulers),
tensors (restored in place), torch and numpy generators, gymnasium environments (their wrappers'
counters, RNG and simulator state: common.rl.envstate), lists and dicts (restored in place), and any
other object, by its attributes of those kinds. The global RNGs (python, numpy, torch) are always
saved. Whatever a step depends on must be in the dict: the registry-wide kill/resume test
(tests/smoke/test_resume.py) fails for a table whose resumed result differs from an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from optrepro.errors import Interrupted
from optrepro.io import atomic_write_bytes, torch_bytes

MAGIC = b"OPTREPRO-CKPT1 "

_signal: int | None = None
"""The signal that arrived during a run (set by the run's handler), or None."""


def on_signal(signum, frame) -> None:
    global _signal
    _signal = signum


def clear_signal() -> None:
    global _signal
    _signal = None


def pending_signal() -> int | None:
    return _signal


class SimulatedKill(BaseException):
    """Test hook (REPRO_FAULT=kill-halfway): the process 'dies' right after a checkpoint, halfway
    through the first resumable loop it runs, without writing a result (like SIGKILL).
    REPRO_FAULT=sigterm-halfway sends the process a real SIGTERM at that point instead."""


_killed = False

loops_entered = 0
"""Resumable loops entered in this process since the run began (a run's own and its cached builds')."""


def _kill_now(step: int, total: int) -> bool:
    global _killed
    fault = os.environ.get("REPRO_FAULT")
    if _killed or fault not in ("kill-halfway", "sigterm-halfway") or step != max(1, total // 2):
        return False
    _killed = True
    if fault == "sigterm-halfway":
        import signal
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the run's handler before the next line
        return False
    return True


def reset_fault() -> None:
    """Let the kill hook fire again (tests run several kills in one process)."""
    global _killed
    _killed = False

loops_entered = 0
"""Resumable loops entered in this process since the run began (a run's own and its cached builds')."""


# ---------------------------------------------------------------- files

def write(path: Path, identity: dict, step: int, state: dict) -> None:
    data = torch_bytes({"identity": identity, "step": int(step), "state": state})
    atomic_write_bytes(path, MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


class _Bad(Exception):
    pass


def _read(path: Path) -> dict:
    raw = Path(path).read_bytes()
    head, sep, data = raw.partition(b"\n")
    if not head.startswith(MAGIC) or not sep:
        raise _Bad("is not an optrepro checkpoint (an older format, or cut before its header)")
    if hashlib.sha256(data).hexdigest().encode() != head[len(MAGIC):]:
        raise _Bad("fails its checksum (truncated or corrupted)")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise _Bad(f"cannot be read ({type(e).__name__})") from None


def read(path: Path, identity: dict, set_aside_bad: bool = True) -> tuple[int, dict] | None:
    """(step, state) from the checkpoint at `path` if it is whole and this run's; else None, with an
    unusable file set aside (by the one process that writes, in a multi-process run)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        ck = _read(path)
        if ck.get("identity") != identity:
            raise _Bad(f"belongs to another run ({_differs(ck.get('identity'), identity)})")
        return int(ck["step"]), ck["state"]
    except (_Bad, OSError) as e:
        if set_aside_bad:
            set_aside(path, str(e))
        return None


def load_file(path: Path) -> dict:
    """The whole checkpoint {identity, step, state} (for inspection and tests); ValueError if unusable."""
    try:
        return _read(path)
    except _Bad as e:
        raise ValueError(f"{path} {e}") from None


def _differs(old, new) -> str:
    if not isinstance(old, dict):
        return "no identity"
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k} {old.get(k)!r} != {new.get(k)!r}" for k in keys)


def set_aside(path: Path, reason: str) -> Path:
    path = Path(path)
    dest = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
    k = 1
    while dest.exists():
        dest, k = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}-{k}"), k + 1
    os.replace(path, dest)
    print(f"repro: warning: checkpoint {path} {reason}; set aside as {dest.name}; starting over", file=sys.stderr)
    return dest


def config_hash(cfg_dict: dict) -> str:
    import json
    return hashlib.sha256(json.dumps(cfg_dict, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- state

def np_generator(cur, state):
    """`cur` (or a new generator of the saved kind, where the env had not been seeded yet) at `state`."""
    if not isinstance(cur, np.random.Generator) or type(cur.bit_generator).__name__ != state["bit_generator"]:
        cur = np.random.Generator(getattr(np.random, state["bit_generator"])())
    cur.bit_generator.state = state
    return cur


_SIMPLE = (bool, int, float, str, type(None))


class _Skip(Exception):
    pass


def _is_env(v) -> bool:
    try:
        import gymnasium as gym
    except ImportError:
        return False
    return isinstance(v, gym.Env)


def dump(v, top: bool = False):
    """A weights_only-loadable image of `v` (see the module docstring for what is covered)."""
    if isinstance(v, _SIMPLE):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, torch.Tensor):
        return v.detach()
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            raise _Skip
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(v).copy())}
    if isinstance(v, torch.Generator):
        return {"__torch_gen__": v.get_state()}
    if isinstance(v, np.random.Generator):
        return {"__np_gen__": v.bit_generator.state}
    if hasattr(v, "state_dict") and hasattr(v, "load_state_dict") and not isinstance(v, type):
        return {"__state_dict__": v.state_dict()}
    if _is_env(v):
        from optrepro.rl.envstate import env_state
        return {"__env__": env_state(v)}
    if isinstance(v, (list, tuple)):
        return {"__list__" if isinstance(v, list) else "__tuple__": [dump(x) for x in v]}
    if isinstance(v, dict):
        if not all(isinstance(k, (str, int)) for k in v):
            raise _Skip
        return {"__dict__": {k: dump(x) for k, x in v.items()}}
    if top or dataclasses.is_dataclass(v):
        return {"__obj__": _dump_attrs(v)}
    raise _Skip


def _dump_attrs(obj) -> dict:
    out = {}
    for k, x in vars(obj).items():
        try:
            out[k] = dump(x)
        except _Skip:
            pass  # not state (a bar, a callback, a context): rebuilt by the code, not restored
    return out


def load(cur, saved):
    """Restore `saved` (from `dump`) into `cur` in place where it can; returns the restored value."""
    if isinstance(saved, torch.Tensor):
        if isinstance(cur, torch.Tensor) and cur.shape == saved.shape and cur.dtype == saved.dtype:
            with torch.no_grad():
                cur.copy_(saved)
            return cur
        return saved
    if not (isinstance(saved, dict) and len(saved) == 1):
        return saved
    (tag, x), = saved.items()
    if tag == "__ndarray__":
        arr = x.numpy()
        if isinstance(cur, np.ndarray) and cur.shape == arr.shape and cur.dtype == arr.dtype:
            cur[...] = arr
            return cur
        return arr.copy()
    if tag == "__torch_gen__":
        cur = cur if isinstance(cur, torch.Generator) else torch.Generator()
        cur.set_state(x)
        return cur
    if tag == "__np_gen__":
        return np_generator(cur, x)
    if tag == "__state_dict__":
        cur.load_state_dict(x)
        return cur
    if tag == "__env__":
        from optrepro.rl.envstate import set_env_state
        set_env_state(cur, x)
        return cur
    if tag in ("__list__", "__tuple__"):
        old = list(cur) if isinstance(cur, (list, tuple)) else []
        items = [load(old[i] if i < len(old) else None, s) for i, s in enumerate(x)]
        if tag == "__tuple__":
            return tuple(items)
        if isinstance(cur, list):
            cur[:] = items
            return cur
        return items
    if tag == "__dict__":
        old = cur if isinstance(cur, dict) else {}
        items = {k: load(old.get(k), s) for k, s in x.items()}
        if isinstance(cur, dict):
            cur.clear()
            cur.update(items)
            return cur
        return items
    if tag == "__obj__":
        if cur is None:
            raise ValueError("checkpoint holds an object the code no longer creates at this point")
        for k, s in x.items():
            setattr(cur, k, load(getattr(cur, k, None), s))
        return cur
    return saved


def capture(objs: dict) -> dict:
    from optrepro.run import rng_state
    out = {"__rng__": rng_state()}
    for name, v in objs.items():
        try:
            out[name] = dump(v, top=True)
        except _Skip:
            raise TypeError(f"checkpoint state '{name}' ({type(v).__name__}) cannot be saved") from None
    return out


def restore(objs: dict, saved: dict) -> None:
    from optrepro.run import set_rng_state
    missing = sorted(set(objs) - set(saved))
    if missing:
        raise ValueError(f"checkpoint lacks {', '.join(missing)}")
    for name, v in objs.items():
        load(v, saved[name])
    set_rng_state(saved["__rng__"])


# ---------------------------------------------------------------- the loop

def steps(total: int, state: dict, path: Path, identity: dict, every: int = 0, resume: bool = True,
          every_s: float = 0.0, save_last: bool = False, on_restore=None, on_step=None, on_save=None,
          done=None, sync=None):
    """Yield 1..total, resuming after the checkpoint at `path` (when `resume` and it is this run's);
    after each step: checkpoint every `every` steps or `every_s` seconds, and on a pending signal
    (then raise Interrupted); and at the last step with `save_last` (a later loop of the same run
then resumes after this one without redoing it). `on_restore(step, extra)` and `on_save() -> extra` carry what the caller
    keeps besides the state (the run's log position); `on_step(s)` runs after every step. With `done`,
`total` is an upper bound and the loop ends after the step at which done() is true (a budget in
episodes whose cost per step varies). With `sync` (common.dist.world.CheckpointSync, a run of several
processes) every rank captures its state, rank 0 writes all of them in one file, each rank restores
its own, and a signal that reaches any rank stops all of them at the same step."""
    global loops_entered
    loops_entered += 1
    start, saved = 0, None
    if resume:
        got = read(path, identity, set_aside_bad=sync is None or sync.writer)
        if got is not None:
            start, saved = got
            if sync is not None:
                saved = sync.unpack(saved)
        if sync is not None:
            start = sync.agree_start(start)
        if saved is not None:
            restore(state, saved)
            if on_restore is not None:
                on_restore(start, saved.get("__extra__"))
    last = time.monotonic()
    if done is not None and done():
        return

    def save(s):
        st = capture(state)
        if on_save is not None:
            st["__extra__"] = on_save()
        if sync is not None:
            st = sync.pack(st)
            if not sync.writer:
                return
        write(path, identity, s, st)

    for s in range(start + 1, int(total) + 1):
        yield s
        if on_step is not None:
            on_step(s)
        kill = _kill_now(s, total)
        timed = every_s and time.monotonic() - last >= every_s
        finished = done is not None and done()
        last_step = save_last and (s == total or finished)
        signalled = _signal is not None
        if sync is not None:  # every rank decides alike, in one all-reduce per step
            signalled, timed = sync.any(signalled, bool(timed))
        if signalled or kill or (every and s % every == 0) or timed or last_step:
            save(s)
            last = time.monotonic()
        if kill:
            raise SimulatedKill(f"REPRO_FAULT=kill-halfway after the checkpoint at step {s} of {total}")
        if signalled:
            raise Interrupted(f"signal {_signal or 'on another rank'} at step {s}; checkpoint written")
        if finished:
            return


def cached_steps(total: int, state: dict, cache_path: Path, every_s: float = 30.0):
    """`steps` for a cached build's training loop (a pretrained model shared by runs): its checkpoint
    sits beside the cache entry and is tied to the entry's name, so a killed build resumes where it
    stopped, whichever run needs it next."""
    from optrepro.io import partial
    return steps(total, state, partial(cache_path), {"cache": Path(cache_path).name}, every_s=every_s)
