"""Metrics tracking: JSONL always; wandb on request (offline unless WANDB_MODE says otherwise).

A wandb failure never loses the JSONL: it is written first and wandb errors only warn."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

TRACKERS = ("jsonl", "wandb")


class Tracker:
    def __init__(self, run_dir: Path, kind: str = "jsonl", name: str = "", config: dict | None = None):
        if kind not in TRACKERS:
            from optrepro.errors import ConfigError
            raise ConfigError(f"tracker '{kind}' unknown; valid: {', '.join(TRACKERS)}")
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", buffering=1)
        self.records = None
        """Records in the file (known once truncated; a run truncates before it logs)."""
        self._wandb = None
        if kind == "wandb":
            self._wandb = _start_wandb(Path(run_dir), name, config or {})

    def truncate_after(self, step: int | None) -> None:
        """Drop records logged after `step` (None: drop all, a fresh run)."""
        self._rewrite(lambda i, rec: step is not None and rec.get("step", 0) <= step)

    def open_resumed(self) -> None:
        """A resumed run: remember the records the killed run wrote (the file is left as it is until
        a checkpoint says how many of them to keep)."""
        self._old = []
        self._rewrite(lambda i, rec: self._old.append(rec) or True)

    def restore_to(self, n: int) -> None:
        """On restoring a checkpoint written after the killed run's first `n` records: the file is
        those records; whatever this run logged again before the restore is dropped."""
        old = getattr(self, "_old", None) or []
        self._rewrite(lambda i, rec: False)
        for rec in old[:n]:
            self._f.write(json.dumps(rec) + "\n")
        self.records = min(n, len(old))

    def _rewrite(self, keep_fn) -> None:
        self._f.close()
        keep = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a half-written last line from a killed run
                if keep_fn(len(keep), rec):
                    keep.append(line)
        from optrepro.io import atomic_write_text
        atomic_write_text(self.path, "".join(l + "\n" for l in keep))
        self.records = len(keep)
        self._f = open(self.path, "a", buffering=1)

    def log(self, step: int, metrics: dict) -> None:
        rec = {"step": int(step)}
        rec.update({k: _num(v) for k, v in metrics.items()})
        self._f.write(json.dumps(rec) + "\n")
        if self.records is not None:
            self.records += 1
        if self._wandb is not None:
            try:
                self._wandb.log(rec, step=int(step))
            except Exception as e:  # never lose a run over wandb
                print(f"warning: wandb.log failed ({e}); JSONL continues", file=sys.stderr)
                self._wandb = None

    def close(self) -> None:
        self._f.close()
        if self._wandb is not None:
            try:
                self._wandb.finish()
            except Exception as e:
                print(f"warning: wandb.finish failed ({e})", file=sys.stderr)


class NullTracker:
    """The tracker of a run's non-writing ranks (rank 0 keeps the log): accepts everything, writes nothing."""

    records = 0

    def truncate_after(self, step) -> None:
        pass

    def open_resumed(self) -> None:
        pass

    def restore_to(self, n: int) -> None:
        self.records = n

    def log(self, step: int, metrics: dict) -> None:
        pass

    def close(self) -> None:
        pass


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else str(v)


def _start_wandb(run_dir: Path, name: str, config: dict):
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb
    except ImportError:
        print("warning: tracker=wandb but wandb is not installed (pip install 'optrepro[tracking]'); "
              "logging to JSONL only", file=sys.stderr)
        return None
    try:
        return wandb.init(project=os.environ.get("WANDB_PROJECT", "optrepro"), name=name,
                          dir=str(run_dir), config=config, reinit="finish_previous")
    except Exception as e:
        print(f"warning: wandb could not start ({e}); logging to JSONL only", file=sys.stderr)
        return None


def read_jsonl(path: Path) -> list[dict]:
    out = []
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out
