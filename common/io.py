"""Atomic, durable file writes (temp file, fsync, rename, fsync of the directory) and safe loading.

Files are created with the usual permissions (0666 less the umask), not mkstemp's 0600, so a
result.json written by one user's run can be read by the group that shares the runs directory."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def atomic_torch_save(path: Path, obj) -> None:
    atomic_write_bytes(path, torch_bytes(obj))


def safe_torch_load(path: Path):
    """Checkpoints hold tensors, numbers, strings, lists and dicts only: weights_only=True."""
    return torch.load(path, map_location="cpu", weights_only=True)


def cached_torch(path: Path, build):
    """The object saved at `path`, built by `build()` and saved first if absent. Concurrent runs (pool
    workers of one `repro run`) wait on a lock file instead of building the same thing twice.
    A build with a training loop makes it resumable with `common.checkpoint.steps(..., path=partial(path))`."""
    import fcntl
    path = Path(path)
    if path.exists():
        return safe_torch_load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(path.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():
                atomic_torch_save(path, build())
                partial(path).unlink(missing_ok=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return safe_torch_load(path)


def partial(path: Path) -> Path:
    """Where a cached build's training loop keeps its checkpoint until the build is saved."""
    path = Path(path)
    return path.with_name(path.name + ".partial")
