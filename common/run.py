"""Run context and runner.

One run = one (paper, table, scale, row, seed), in `<out>/<pid>/<table>/<scale>/<row>/seed<k>/`:
`config.yaml` (resolved), `metrics.jsonl`, `result.json` (status ok | diverged | failed | interrupted,
metrics, meta) and `checkpoint/last.pt`.

Experiments see only `RunContext`: `ctx.log(step, loss=...)` (JSONL, wandb, divergence guard),
`ctx.restore()` / `ctx.step_done(step, get_state)` (checkpoints every N steps and on SIGTERM/SIGINT),
`ctx.progress(total)` (a progress bar showing the loss).
"""
from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from common import meta as meta_mod
from common.config import TableSpec, build_config, row_layers, to_dict
from common.errors import ConfigError, Diverged, Interrupted, UsageError
from common.io import atomic_torch_save, atomic_write_json, atomic_write_text, safe_torch_load
from common.track import Tracker

GUARDED = ("loss", "train_loss")
"""Metrics whose NaN/inf ends a run as `diverged`."""


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class RunContext:
    def __init__(self, run_dir: Path, cfg, resume: bool = False, name: str = "", show_progress: bool = True):
        self.dir = Path(run_dir)
        self.cfg = cfg
        self.seed = cfg.seed
        self.ckpt_path = self.dir / "checkpoint" / "last.pt"
        self.tracker = Tracker(self.dir, cfg.tracker, name=name, config=to_dict(cfg))
        self.resume = resume
        self.show_progress = show_progress
        self._signal = None
        self._bar = None
        self.last_step = 0
        self.out_root = None
        """The --out directory (runs/), set by `execute`: analyses read other tables' runs from it."""
        self.scale = ""

    # -- metrics
    def log(self, step: int, **metrics) -> None:
        self.last_step = step
        self.tracker.log(step, metrics)
        for k in GUARDED:
            if k in metrics and not math.isfinite(float(metrics[k])):
                raise Diverged(step, k, float(metrics[k]))
        if self._bar is not None:
            if "loss" in metrics:
                self._bar.set_postfix(loss=f"{float(metrics['loss']):.4g}", refresh=False)

    def progress(self, total: int, initial: int = 0):
        """A tqdm bar (disabled when not a terminal or REPRO_PROGRESS=0); call .update(n)."""
        from tqdm.auto import tqdm
        disable = (not self.show_progress or os.environ.get("REPRO_PROGRESS") == "0"
                   or not sys.stderr.isatty())
        self._bar = tqdm(total=total, initial=initial, disable=disable, leave=False,
                         desc=self.dir.parent.name, dynamic_ncols=True)
        return self._bar

    # -- checkpoints
    def restore(self):
        """(step, state) from the last checkpoint when resuming, else (0, None)."""
        if self.resume and self.ckpt_path.exists():
            ck = safe_torch_load(self.ckpt_path)
            self.tracker.truncate_after(ck["step"])
            return ck["step"], ck["state"]
        if not self.resume:
            self.tracker.truncate_after(0)
        return 0, None

    def save(self, step: int, state: dict) -> None:
        atomic_torch_save(self.ckpt_path, {"step": int(step), "state": state})

    def step_done(self, step: int, get_state) -> None:
        """Call after each step: checkpoints every `ckpt_every` steps and on a signal."""
        every = self.cfg.ckpt_every
        if self._signal is not None or (every and step % every == 0):
            self.save(step, get_state())
        if self._bar is not None:
            self._bar.update(1)
        if self._signal is not None:
            raise Interrupted(f"signal {self._signal} at step {step}; checkpoint written")

    def _on_signal(self, signum, frame):
        self._signal = signum

    def close(self):
        if self._bar is not None:
            self._bar.close()
        self.tracker.close()


def rng_state(gen: torch.Generator | None = None) -> dict:
    """Everything random a run depends on, as tensors (loads with weights_only=True)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "numpy": torch.tensor(keys.astype(np.int64)),
          "numpy_extra": [int(pos), int(has_gauss), float(cached)], "python": repr(random.getstate())}
    if gen is not None:
        st["gen"] = gen.get_state()
    return st


def set_rng_state(st: dict, gen: torch.Generator | None = None) -> None:
    import ast
    torch.set_rng_state(st["torch"])
    pos, has_gauss, cached = st["numpy_extra"]
    np.random.set_state(("MT19937", st["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(ast.literal_eval(st["python"]))
    if gen is not None and "gen" in st:
        gen.set_state(st["gen"])


# ---------------------------------------------------------------- jobs

@dataclass
class Job:
    pid: str
    table: str
    scale: str
    row: str
    seed: int
    cfg: object
    run_dir: Path
    resume: bool = False
    show_progress: bool = True

    @property
    def name(self) -> str:
        return f"{self.pid}/{self.table}/{self.scale}/{self.row}/seed{self.seed}"


def plan(paper, table: str, spec: TableSpec, scale: str, seeds=None, rows=None, overrides=None,
         out: Path = Path("runs"), resume: bool = False) -> list[Job]:
    """Resolve every run's config before anything is written: a bad key fails here (exit 2)."""
    from common.config import closest
    sc = spec.scales[scale]
    from common.config import run_rows
    all_rows = run_rows(spec, scale)
    if rows:
        for r in rows:
            if r not in spec.rows:
                raise UsageError(f"unknown row '{r}' in {paper.pid}/{table}{closest(r, spec.rows)}; "
                                 f"rows: {', '.join(spec.rows)}")
        all_rows = run_rows(spec, scale, [r for r in spec.rows if r in rows])
    seeds = list(seeds) if seeds else list(sc.seeds or spec.seeds)
    cls = paper.config_class(spec)
    where = str(paper.table_path(table).relative_to(paper.dir.parent.parent))
    jobs = []
    for row in all_rows:
        for seed in seeds:
            layers = row_layers(spec, where, scale, row, overrides or {}) + [("seed", {"seed": int(seed)})]
            cfg = build_config(cls, layers)
            jobs.append(Job(paper.pid, table, scale, row, int(seed), cfg,
                            Path(out) / paper.pid / table / scale / row / f"seed{seed}", resume))
    preflight = paper.preflight_fn(spec)
    if preflight is not None:
        for cfg in {id(j.cfg): j.cfg for j in jobs}.values():
            preflight(cfg)
    return jobs


def same_config(job: Job) -> bool:
    """Whether the run directory holds a run of exactly this resolved config (what --resume needs
    before it reuses a result or continues a checkpoint)."""
    path = job.run_dir / "config.yaml"
    try:
        return yaml.safe_load(path.read_text()) == yaml.safe_load(yaml.safe_dump(to_dict(job.cfg), sort_keys=False))
    except (OSError, yaml.YAMLError):
        return False


def run_threads() -> int:
    """Torch threads for every run, in the main process and in pool workers alike: float reductions
    depend on the thread count, so without this the same seed gave different numbers with --jobs 1
    and --jobs 2. REPRO_THREADS, default 1."""
    return max(1, int(os.environ.get("REPRO_THREADS", "1")))


def execute(job: Job) -> dict:
    """Run one job in this process; always leaves a result.json (unless killed)."""
    from common.registry import get_paper
    torch.set_num_threads(run_threads())
    paper = get_paper(job.pid)
    spec = paper.load_table(job.table)
    fn = paper.run_fn(spec)
    result_path = job.run_dir / "result.json"
    if job.resume and not same_config(job):
        job.resume = False  # the point's config changed since it ran (or it never ran): start over
    if job.resume and result_path.exists():
        import json
        prev = json.loads(result_path.read_text())
        if prev.get("status") == "ok":
            return prev
    job.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job.run_dir / "config.yaml", yaml.safe_dump(to_dict(job.cfg), sort_keys=False))
    if not job.resume and (job.run_dir / "checkpoint" / "last.pt").exists():
        (job.run_dir / "checkpoint" / "last.pt").unlink()
    seed_everything(job.seed)
    ctx = RunContext(job.run_dir, job.cfg, resume=job.resume, name=job.name, show_progress=job.show_progress)
    ctx.out_root, ctx.scale = job.run_dir.parents[4], job.scale
    if not job.resume:
        ctx.tracker.truncate_after(None)  # a fresh run starts a fresh log, whether or not it trains
    old = {}
    in_main = _is_main_thread()
    if in_main:
        for s in (signal.SIGTERM, signal.SIGINT):
            old[s] = signal.signal(s, ctx._on_signal)
    t0 = time.time()
    res = {"pid": job.pid, "table": job.table, "scale": job.scale, "row": job.row, "seed": job.seed}
    try:
        metrics = fn(job.cfg, ctx)
        bad = {k: v for k, v in metrics.items() if not math.isfinite(float(v))}
        res.update(status="ok", metrics={k: float(v) for k, v in metrics.items()})
        if bad:
            res.update(status="diverged", error=f"non-finite final metrics: {bad}")
            res["metrics"] = {k: (v if math.isfinite(v) else str(v)) for k, v in res["metrics"].items()}
    except Diverged as e:
        res.update(status="diverged", step=e.step, error=str(e), metrics={})
    except Interrupted as e:
        res.update(status="interrupted", step=ctx.last_step, error=str(e), metrics={})
    except (UsageError, ConfigError):
        raise
    except Exception as e:  # a failed run is recorded; the sweep goes on
        res.update(status="failed", error=f"{type(e).__name__}: {e}", metrics={})
        atomic_write_text(job.run_dir / "error.txt", traceback.format_exc())
    finally:
        ctx.close()
        if in_main:
            for s, h in old.items():
                signal.signal(s, h)
    res["meta"] = dict(meta_mod.collect(), wall_time_s=round(time.time() - t0, 3),
                       finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(result_path, res)
    if res["status"] == "interrupted":
        raise Interrupted(res["error"])
    return res


def _is_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _execute_quiet(job: Job) -> dict:
    job.show_progress = False
    return execute(job)


def run_jobs(jobs: list[Job], n_jobs: int = 1, launcher: str = "local", out: Path = Path("runs"),
             on_result=None) -> list[dict]:
    """Run jobs one after another (default), in a process pool (--jobs N) or through submitit."""
    results = []
    if launcher == "slurm":
        import submitit
        folder = Path(out) / "_submitit" / "%j"
        ex = submitit.AutoExecutor(folder=str(folder), cluster=os.environ.get("REPRO_SUBMITIT_CLUSTER") or None)
        ex.update_parameters(timeout_min=int(os.environ.get("REPRO_SLURM_TIMEOUT_MIN", "60")))
        handles = [ex.submit(_execute_quiet, j) for j in jobs]
        for j, h in zip(jobs, handles):
            try:
                r = h.result()
            except Exception as e:
                r = {"pid": j.pid, "row": j.row, "seed": j.seed, "status": "failed", "error": str(e)[-500:]}
            results.append(r)
            on_result and on_result(j, r)
        return results
    if n_jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = [(j, pool.submit(_execute_quiet, j)) for j in jobs]
            for j, f in futs:
                try:
                    r = f.result()
                except (UsageError, ConfigError):
                    raise
                except Exception as e:
                    r = {"pid": j.pid, "row": j.row, "seed": j.seed, "status": "failed", "error": str(e)}
                results.append(r)
                on_result and on_result(j, r)
        return results
    for j in jobs:
        r = execute(j)
        results.append(r)
        on_result and on_result(j, r)
    return results
