"""`repro run ... --launcher torchrun --nproc N`: each run is one `torchrun --standalone
--nproc_per_node N` job on this machine (gloo on the CPU, NCCL for a CUDA device); under Slurm, the
same runs go through `--launcher slurm` with the simulated-workers mode, or a user's own srun/torchrun
line calling `python -m optrepro.dist.entry`.

The parent pickles the job, torchrun starts N copies of `optrepro.dist.entry`, rank 0 writes the
run's files exactly as a single-process run does, and the parent reads rank 0's result. A rank that
fails makes torchrun stop the others; the run is then recorded as failed with the end of their
output. A signal (Ctrl-C, SIGTERM) reaches every rank through torchrun: they agree on a step,
checkpoint it together and the sweep stops for `--resume`."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from optrepro.errors import ConfigError, Interrupted, UsageError

INTERRUPTED_EXIT = 3
"""The entry's exit code when its run was interrupted (checkpoint written): non-zero, so torchrun stops
the other ranks; the launcher reads the interruption from rank 0's result file."""


def supports_processes(paper, spec) -> bool:
    """Whether a table's experiment runs under several processes (it declares `distributed = True`
    and hosts its workers with common.dist.world.local_workers)."""
    import inspect
    fn = paper.run_fn(spec)
    return bool(getattr(fn, "distributed", False) or getattr(inspect.getmodule(fn), "distributed", False))


def check_jobs(paper, spec, jobs, nproc: int) -> None:
    """Exit 2 before anything starts when these runs cannot go over `nproc` processes."""
    if nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {nproc}")
    if not supports_processes(paper, spec):
        raise UsageError(f"{paper.pid}: its experiment does not run over several processes "
                         f"(only experiments that declare `distributed = True`, e.g. diloco_2023); use --launcher local")
    from optrepro.dist.world import World, local_workers
    for j in jobs:
        try:
            local_workers(int(getattr(j.cfg, "workers", 1)), World(0, nproc))
        except ConfigError as e:
            raise UsageError(f"row {j.row}: {e}") from None


def run_torchrun(jobs, nproc: int, on_result=None) -> list[dict]:
    results = []
    for j in jobs:
        with tempfile.TemporaryDirectory(prefix="repro-torchrun-") as tmp:
            job_file, out_file = Path(tmp) / "job.pkl", Path(tmp) / "result.json"
            j.show_progress = False
            job_file.write_bytes(pickle.dumps(j))
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "optrepro.dist.entry", str(job_file), str(out_file)]
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if out_file.exists():  # rank 0's result (or, interrupted, its status)
                r = json.loads(out_file.read_text())
                if r.get("status") == "interrupted":
                    raise Interrupted(f"{j.name} under torchrun")
            else:
                tail = "\n".join(p.stdout.strip().splitlines()[-15:])
                r = {"pid": j.pid, "row": j.row, "seed": j.seed, "status": "failed",
                     "error": f"torchrun exited {p.returncode} without a result: {tail[-1500:]}"}
        results.append(r)
        on_result and on_result(j, r)
    return results
