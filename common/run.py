"""Run context and runner.

One run = one (paper, table, scale, row, seed), in `<out>/<pid>/<table>/<scale>/<row>/seed<k>/`:
`config.yaml` (resolved), `metrics.jsonl`, `result.json` (status ok | diverged | failed | interrupted,
metrics, meta) and `checkpoint/last.pt`.

Experiments see only `RunContext`: `ctx.log(step, loss=...)` (JSONL, wandb, divergence guard),
`for s in ctx.steps(total, state): ...` (a resumable loop: checkpoints every N steps, at its end and
on SIGTERM/SIGINT; common.checkpoint), `ctx.progress(total)` (a progress bar showing the loss).
"""
from __future__ import annotations

import math
import os
import random
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from optrepro import checkpoint
from optrepro import meta as meta_mod
from optrepro import overrides as ov
from optrepro.config import TableSpec, build_config, check_numbers, row_layers, to_dict
from optrepro.errors import ConfigError, Diverged, Interrupted, UsageError
from optrepro.io import atomic_write_json, atomic_write_text
from optrepro.track import NullTracker, Tracker

GUARDED = ("loss", "train_loss")
"""Metrics whose NaN/inf ends a run as `diverged`."""


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class RunContext:
    def __init__(self, run_dir: Path, cfg, resume: bool = False, name: str = "", show_progress: bool = True):
        from optrepro.dist.world import world
        self.dir = Path(run_dir)
        self.cfg = cfg
        self.seed = cfg.seed
        self.world = world()
        """This process's rank and the number of processes (common.dist; one unless under torchrun)."""
        self.ckpt_dir = self.dir / "checkpoint"
        self.identity = {"run": name, "config": checkpoint.config_hash(to_dict(cfg))}
        """What a checkpoint must carry to be this run's (pid/table/scale/row/seed and the config's hash)."""
        if self.world.distributed:
            self.identity["processes"] = self.world.size
        self.tracker = (Tracker(self.dir, cfg.tracker, name=name, config=to_dict(cfg)) if self.world.main
                        else NullTracker())
        self.resume = resume
        self.show_progress = show_progress
        self._bar = None
        self.last_step = 0
        self.no_checkpoint_reason = ""
        self._loops = 0
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
                         desc=self.dir.parent.name, dynamic_ncols=True, position=1)
        return self._bar

    # -- checkpoints
    def steps(self, total: int, state: dict, name: str | None = None, progress: bool = True, done=None):
        """`for s in ctx.steps(total, state): ...`: steps 1..total, resumed from this run's checkpoint
        `checkpoint/<name>.pt` under --resume (see common.checkpoint). Loops are named in the order a
        run enters them (last, loop2, loop3, ...: the same order when resumed) unless `name` is given.
        Checkpoints every `ckpt_every` steps, at the loop's last step, and on SIGTERM/SIGINT."""
        self._loops += 1
        name = name or ("last" if self._loops == 1 else f"loop{self._loops}")
        bar = self.progress(total) if progress else None

        def on_restore(step, extra):
            self.tracker.restore_to(int((extra or {}).get("records", 0)))
            if bar is not None:
                bar.n = step
                bar.refresh()

        def on_step(s):
            if bar is not None:
                bar.update(1)

        return checkpoint.steps(total, state, self.ckpt_dir / f"{name}.pt", dict(self.identity, loop=name),
                                every=self.cfg.ckpt_every, resume=self.resume, save_last=True,
                                on_restore=on_restore, on_step=on_step, done=done,
                                on_save=lambda: {"records": self.tracker.records},
                                sync=self._sync())

    def _sync(self):
        if not self.world.distributed:
            return None
        from optrepro.dist.world import CheckpointSync
        return CheckpointSync(self.world)

    def no_checkpoint(self, reason: str) -> None:
        """Declare that this run has no loop worth resuming (a closed form, a fit, seconds of work)."""
        self.no_checkpoint_reason = reason

    def usable_checkpoint(self) -> bool:
        """Whether a resume has a checkpoint of this run to continue from (bad ones are set aside)."""
        found = False
        for p in sorted(self.ckpt_dir.glob("*.pt")) if self.ckpt_dir.exists() else []:
            found |= checkpoint.read(p, dict(self.identity, loop=p.stem), set_aside_bad=self.world.main) is not None
        if self.world.distributed:
            from optrepro.dist.world import agree_any, barrier
            found = not agree_any(not found)  # resume only if every rank can
            barrier()  # no rank sets a file aside before all have read it
        return found

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
    overrides: dict = field(default_factory=dict)

    @property
    def variant(self) -> str:
        """'' or '@<hash>' of the command-line overrides: part of the run's identity and directory."""
        return ov.variant(self.overrides)

    @property
    def name(self) -> str:
        return f"{self.pid}/{self.table}/{self.scale}/{self.row}{self.variant}/seed{self.seed}"


def plan(paper, table: str, spec: TableSpec, scale: str, seeds=None, rows=None, overrides=None,
         out: Path = Path("runs"), resume: bool = False) -> list[Job]:
    """Resolve every run's config before anything is written: a bad key fails here (exit 2)."""
    from optrepro.config import closest
    sc = spec.scales[scale]
    from optrepro.config import run_rows
    all_rows = run_rows(spec, scale)
    if rows:
        for r in rows:
            if r not in spec.rows:
                raise UsageError(f"unknown row '{r}' in {paper.pid}/{table}{closest(r, spec.rows)}; "
                                 f"rows: {', '.join(spec.rows)}")
        all_rows = run_rows(spec, scale, [r for r in spec.rows if r in rows])
    seeds = list(seeds) if seeds else list(sc.seeds or spec.seeds)
    from optrepro.registry import validate_meta
    bad = validate_meta(paper.meta)
    if bad:
        raise UsageError(f"papers/{paper.pid}/{bad[0]} (`repro check` lists every problem)")
    cls = paper.config_class(spec)
    where = str(paper.table_path(table).relative_to(paper.dir.parent.parent))
    variant = ov.variant(overrides or {})
    jobs = []
    for row in all_rows:
        for seed in seeds:
            layers = row_layers(spec, where, scale, row, overrides or {}) + [("seed", {"seed": int(seed)})]
            cfg = build_config(cls, layers)
            check_numbers(cfg, f"{where} row {row}")
            jobs.append(Job(paper.pid, table, scale, row, int(seed), cfg,
                            Path(out) / paper.pid / table / scale / (row + variant) / f"seed{seed}", resume,
                            overrides=overrides or {}))
    preflight = paper.preflight_fn(spec)
    if preflight is not None:  # missing data first: it is needed whatever the machine
        for cfg in {id(j.cfg): j.cfg for j in jobs}.values():
            preflight(cfg)
    for j in jobs:
        check_device(j.cfg, f"{where} row {j.row}")
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
    from optrepro.registry import get_paper
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
    from optrepro.dist.world import barrier, world
    main = world().main  # under torchrun, rank 0 writes the run's files; every rank computes
    try:
        job.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the run directory {job.run_dir}: {e.strerror}") from None
    if main:
        atomic_write_text(job.run_dir / "config.yaml", yaml.safe_dump(to_dict(job.cfg), sort_keys=False))
    seed_everything(job.seed)
    ctx = RunContext(job.run_dir, job.cfg, resume=job.resume, name=job.name, show_progress=job.show_progress)
    ctx.out_root, ctx.scale = job.run_dir.parents[4], job.scale
    if ctx.resume and not ctx.usable_checkpoint():
        ctx.resume = False  # killed before its first checkpoint (or the checkpoint was set aside): start over
    if not ctx.resume:
        for p in ctx.ckpt_dir.glob("*.pt") if ctx.ckpt_dir.exists() and main else []:
            p.unlink()
        ctx.tracker.truncate_after(None)  # a fresh run starts a fresh log, whether or not it trains
    else:
        ctx.tracker.open_resumed()
    barrier()
    old = {}
    in_main = _is_main_thread()
    checkpoint.clear_signal()
    checkpoint.loops_entered = 0
    if in_main:
        for s in (signal.SIGTERM, signal.SIGINT):
            old[s] = signal.signal(s, checkpoint.on_signal)
    t0 = time.time()
    res = {"pid": job.pid, "table": job.table, "scale": job.scale, "row": job.row, "seed": job.seed,
           "resumed": bool(ctx.resume)}
    if job.overrides:
        res.update(variant=job.variant, overrides=ov.flat(job.overrides))
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
        if main:
            atomic_write_text(job.run_dir / "error.txt", traceback.format_exc())
        else:
            traceback.print_exc()
    finally:
        ctx.close()
        if in_main:
            for s, h in old.items():
                signal.signal(s, h)
    res["checkpointed"] = checkpoint.loops_entered > 0
    if ctx.no_checkpoint_reason:
        res["no_checkpoint"] = ctx.no_checkpoint_reason
    res["meta"] = dict(meta_mod.collect(), wall_time_s=round(time.time() - t0, 3),
                       finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if ctx.world.distributed:
        res["meta"]["processes"] = ctx.world.size
    if main:
        atomic_write_json(result_path, res)
    if res["status"] == "interrupted":
        raise Interrupted(res["error"])
    return res


class SweepProgress:
    """Sweep-level progress as plain lines (they read the same in a terminal, a log file and a Slurm
    job's output, whatever --jobs is): `[3/12 25%, 41 s, ETA 2 min]` as each run finishes. On a
    terminal a sweep bar (rows x seeds) also sits under the lines, above each run's own bar."""

    def __init__(self, total: int, clock=time.monotonic, bar: bool | None = None):
        self.total, self.done, self.clock, self.t0 = total, 0, clock, clock()
        if bar is None:
            bar = sys.stderr.isatty() and os.environ.get("REPRO_PROGRESS") != "0" and total > 1
        self.bar = None
        if bar:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc="sweep", unit="run", position=0, dynamic_ncols=True)

    def emit(self, line: str) -> None:
        """Print a line above the bars (a plain print when there are none)."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def tick(self) -> str:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        el = self.clock() - self.t0
        left = el / self.done * (self.total - self.done)
        eta = "done" if self.done >= self.total else f"ETA {_dur(left)}"
        return f"[{self.done}/{self.total} {100 * self.done // max(1, self.total)}%, {_dur(el)}, {eta}]"


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def _is_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _execute_quiet(job: Job) -> dict:
    job.show_progress = False
    return execute(job)


CLUSTERS = ("slurm", "local", "debug")
"""REPRO_SUBMITIT_CLUSTER values: slurm (sbatch), local (subprocesses here), debug (this process)."""


def slurm_cluster() -> str:
    """The submitit cluster `--launcher slurm` uses: REPRO_SUBMITIT_CLUSTER, else slurm when sbatch is
    on PATH. No sbatch and no override is a UsageError (exit 2), never a silent local run."""
    import importlib.util
    import shutil
    if importlib.util.find_spec("submitit") is None:
        raise UsageError("--launcher slurm needs submitit: pip install 'optrepro[slurm]'")
    cluster = os.environ.get("REPRO_SUBMITIT_CLUSTER", "")
    if cluster and cluster not in CLUSTERS:
        raise UsageError(f"REPRO_SUBMITIT_CLUSTER={cluster}: valid values are {', '.join(CLUSTERS)}")
    if not cluster and shutil.which("sbatch") is None:
        raise UsageError("--launcher slurm: no sbatch on this machine. Run on a Slurm login node, or set "
                         "REPRO_SUBMITIT_CLUSTER=local (subprocesses here) or REPRO_SUBMITIT_CLUSTER=debug "
                         "(in this process) to try the launcher without Slurm")
    return cluster or "slurm"


def check_device(cfg, where: str) -> None:
    """device is cpu, cuda or cuda:<n>, and CUDA is there when asked for (exit 2 before any run)."""
    dev = str(getattr(cfg, "device", "cpu"))
    if not re.match(r"^(cpu|cuda(:\d+)?)$", dev):
        raise ConfigError(f"{where}: device={dev}: valid values are cpu, cuda, cuda:<index>")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{where}: device={dev} but torch sees no CUDA device here")


def run_jobs(jobs: list[Job], n_jobs: int = 1, launcher: str = "local", out: Path = Path("runs"),
             on_result=None, slurm: dict | None = None) -> list[dict]:
    """Run jobs one after another (default), in a process pool (--jobs N) or through submitit
    (`slurm`: submitit parameters such as slurm_partition, gpus_per_node, mem_gb, timeout_min)."""
    results = []
    if launcher == "slurm":
        import submitit
        folder = Path(out) / "_submitit" / "%j"
        ex = submitit.AutoExecutor(folder=str(folder), cluster=slurm_cluster())
        params = {"timeout_min": int(os.environ.get("REPRO_SLURM_TIMEOUT_MIN", "60")), **(slurm or {})}
        ex.update_parameters(**params)
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
