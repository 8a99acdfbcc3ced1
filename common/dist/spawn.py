"""Run a function in N fresh processes joined in one gloo process group on this machine, from
inside a run (experiments whose point is what each rank holds, e.g. ZeRO's sharded states, which
one process cannot simulate): `spawn(fn, n, *args)` returns each rank's return value in rank order.

`fn(world, *args)` must be a module-level function (the processes are started with 'spawn' and
import it) returning something picklable. Each process uses one torch thread. An exception in any
rank is raised here as a RuntimeError carrying that rank's traceback; the other ranks are stopped."""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import socket
import time
import traceback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, n: int, port: int, fn, args, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(n),
                      LOCAL_RANK=str(rank))
    import torch
    import torch.distributed as dist
    from datetime import timedelta

    from optrepro.dist.world import world
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=n, timeout=timedelta(seconds=120))
        q.put((rank, "ok", fn(world(), *args)))
    except BaseException:
        q.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(fn, n: int, *args, timeout_s: float = 600.0) -> list:
    if n < 1:
        raise ValueError(f"need at least one process, got {n}")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, n, port, fn, args, q), daemon=True) for r in range(n)]
    for p in procs:
        p.start()
    out, err, got = [None] * n, None, 0
    deadline = time.monotonic() + timeout_s
    try:
        while got < n and err is None:
            try:
                rank, status, value = q.get(timeout=1.0)
            except queue.Empty:
                dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
                if dead:  # died before it could report (killed, or could not start)
                    err = f"rank {dead[0]} of {n} exited with code {procs[dead[0]].exitcode} without a result"
                elif time.monotonic() > deadline:
                    err = f"no result from all {n} processes within {timeout_s:.0f} s"
                continue
            if status == "error":
                err = f"rank {rank} of {n} failed:\n{value}"
            else:
                out[rank], got = value, got + 1
    finally:
        for p in procs:
            if err is not None and p.is_alive():
                p.terminate()
            p.join(timeout=30)
    if err is not None:
        raise RuntimeError(err)
    return out
