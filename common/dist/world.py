"""Who this process is in a distributed run, and the collectives the run layer needs.

A run has M *workers* (the algorithm's replicas: `cfg.workers`) and W *processes* (1 in the
simulated mode, `--nproc` under torchrun). Process r hosts the contiguous block of M / W workers
`local_workers(M)`. Everything random a worker sees is seeded by its worker index, never by its
rank, so one process simulating M workers and W processes hosting M / W each compute the same
thing (tests/dist checks it bit for bit).

Process groups are set up by `init()` from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT): gloo on the CPU, NCCL when the run's device is CUDA."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from optrepro.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes config, metrics, checkpoints and the result."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place: from the initialized process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def init(device: str = "cpu", timeout_s: float = 300.0) -> World:
    """Join the process group torchrun describes in the environment (no-op without it)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return world()
    if not dist.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return world()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_workers(n_workers: int, w: World | None = None) -> list[int]:
    """The worker indices this process hosts: a contiguous block of n_workers / world size."""
    w = w or world()
    if n_workers < 1 or n_workers % w.size:
        raise ConfigError(f"workers={n_workers} cannot be split over {w.size} processes "
                          f"(it must be a positive multiple of --nproc)")
    k = n_workers // w.size
    return list(range(w.rank * k, (w.rank + 1) * k))


def worker_generator(seed: int, worker: int, step: int, salt: int = 0) -> torch.Generator:
    """The generator a worker's batch at `step` is drawn with: a function of (seed, worker, step),
    the same whichever process hosts the worker."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + worker) * 10_007 + step) * 31 + salt)


# ---------------------------------------------------------------- run-layer collectives

def barrier() -> None:
    if world().distributed:
        dist.barrier()


def agree_any(*flags: bool):
    """Each flag true on every rank if it is true on any (a signal that reached one rank first), in
    one all-reduce; one flag gives a bool, several a tuple."""
    if world().distributed:
        t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flags = tuple(bool(x) for x in t.tolist())
    return bool(flags[0]) if len(flags) == 1 else tuple(bool(f) for f in flags)


def agree_int(x: int) -> tuple[int, int]:
    """(min, max) of an integer over the ranks (a resume step every rank must share)."""
    if not world().distributed:
        return int(x), int(x)
    t = torch.tensor([int(x), -int(x)], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t[0]), -int(t[1])


def gather_to_main(obj):
    """The list of every rank's `obj` on rank 0 (None elsewhere)."""
    w = world()
    if not w.distributed:
        return [obj]
    out = [None] * w.size if w.main else None
    dist.gather_object(obj, out, dst=0)
    return out


class CheckpointSync:
    """What common.checkpoint.steps needs to checkpoint a multi-process run: every rank captures
    its own state, rank 0 writes the list of them (one file, `{"__ranks__": [...]}`), every rank
    restores its own entry; the signal that interrupts a run is agreed on, so all ranks save at
    the same step."""

    def __init__(self, w: World | None = None):
        self.w = w or world()

    @property
    def writer(self) -> bool:
        return self.w.main

    def pack(self, captured: dict):
        ranks = gather_to_main(captured)
        return {"__ranks__": ranks} if self.w.main else None

    def unpack(self, saved: dict) -> dict:
        ranks = saved.get("__ranks__")
        if not isinstance(ranks, list) or len(ranks) != self.w.size:
            raise ValueError(f"checkpoint was written by {len(ranks) if isinstance(ranks, list) else 1} "
                             f"processes, this run has {self.w.size}")
        return ranks[self.w.rank]

    def any(self, *flags: bool):
        return agree_any(*flags)

    def agree_start(self, step: int) -> int:
        lo, hi = agree_int(step)
        if lo != hi:
            raise RuntimeError(f"ranks disagree on the checkpoint to resume from (steps {lo} and {hi})")
        return lo
