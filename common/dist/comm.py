"""Collectives over an algorithm's M workers, with the bytes they move counted where they are
called (the wrapper, not a formula, does the counting).

`Comm.mean(per_worker)` takes, for each worker this process hosts, a list of tensors (gradients,
pseudo-gradients) and returns their mean over all M workers. The tensors are flattened into one
buffer per worker; this process sums its own workers' buffers in worker order and, with several
processes, all-reduces the sums (torch.distributed, gloo or NCCL); the total is divided by M. With
one process per pair of workers or all workers in one process the sums are the same floating-point
operations (a + b), which is what makes the simulated and the torchrun runs equal bit for bit for
M = 2 over 2 processes; with more workers per process the order of the additions differs.

Accounting (per worker, for the algorithm's traffic): `bytes` is the payload each worker puts into
all-reduces (elements x element size of its buffer), `calls` the number of all-reduces. A ring
all-reduce sends 2 (M - 1) / M times the payload from each worker: `ring_bytes` reports that. The
scalars averaged for logging go to `control_bytes`, kept apart from the algorithm's."""
from __future__ import annotations

import torch
import torch.distributed as dist

from optrepro.dist.world import World, world


class Comm:
    def __init__(self, n_workers: int, w: World | None = None):
        self.n = int(n_workers)
        self.w = w or world()
        self.bytes = 0
        self.calls = 0
        self.control_bytes = 0

    def _sum(self, buffers: list[torch.Tensor]) -> torch.Tensor:
        """The sum over all workers: this process's buffers in worker order, then across processes."""
        total = buffers[0].clone()
        for b in buffers[1:]:
            total += b
        if self.w.distributed:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def _reduce(self, buffers: list[torch.Tensor]) -> torch.Tensor:
        return self._sum(buffers) / self.n

    def mean(self, per_worker: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """The mean over all workers of each tensor position; `per_worker` holds this process's
        workers' lists (same shapes and dtypes in every list)."""
        if not per_worker:
            raise ValueError("no local workers")
        flat = [torch.cat([t.detach().reshape(-1) for t in ts]) for ts in per_worker]
        if self.n > 1:  # a single worker averages with nobody: nothing is sent
            self.bytes += flat[0].numel() * flat[0].element_size()
            self.calls += 1
        out = self._reduce(flat)
        parts, i = [], 0
        for t in per_worker[0]:
            parts.append(out[i:i + t.numel()].view_as(t))
            i += t.numel()
        return parts

    def group_mean(self, per_worker: list[list[torch.Tensor]], workers: list[int],
                   groups: list[list[int]], control: bool = False) -> list[list[torch.Tensor]]:
        """For each hosted worker (`workers`, the global indices of `per_worker`'s lists), the mean of
        its tensors over the workers of its group (`groups` partitions range(M); summed in the
        group's listed order). Gossip traffic: each worker's payload is its buffer, sent to its
        group once (counted in `bytes`, one call). Over processes the buffers are exchanged by one
        all-reduce of the stacked (M, payload) rows, each row non-zero in one process only, so
        every process sums the same numbers as the simulated run; that transport moves more than
        a pairwise exchange would, and the count is the algorithm's payload, not the transport's.
        `control`: measurement traffic (`control_bytes`). With one group of all workers this is a
        mean summed in worker order whatever the processes, unlike `mean`."""
        if not per_worker:
            raise ValueError("no local workers")
        flat = [torch.cat([t.detach().reshape(-1) for t in ts]) for ts in per_worker]
        rows = torch.zeros(self.n, flat[0].numel(), dtype=flat[0].dtype)
        for w, f in zip(workers, flat):
            rows[w] = f
        if control:
            self.control_bytes += flat[0].numel() * flat[0].element_size()
        elif max(len(g) for g in groups) > 1:
            self.bytes += flat[0].numel() * flat[0].element_size()
            self.calls += 1
        if self.w.distributed:
            dist.all_reduce(rows, op=dist.ReduceOp.SUM)
        group_of = {w: g for g in groups for w in g}
        out = []
        for w in workers:
            g = group_of[w]
            total = rows[g[0]].clone()
            for k in g[1:]:
                total += rows[k]
            total /= len(g)
            parts, i = [], 0
            for t in per_worker[0]:
                parts.append(total[i:i + t.numel()].view_as(t))
                i += t.numel()
            out.append(parts)
        return out

    def mean_scalars(self, per_worker: list[list[float]]) -> list[float]:
        """Means over all workers of a few floats (losses for the log): control traffic."""
        buf = [torch.tensor(v, dtype=torch.float64) for v in per_worker]
        self.control_bytes += buf[0].numel() * buf[0].element_size()
        return self._reduce(buf).tolist()

    @property
    def ring_bytes(self) -> float:
        return self.bytes * 2 * (self.n - 1) / self.n

    def state_dict(self) -> dict:
        return {"bytes": self.bytes, "calls": self.calls, "control_bytes": self.control_bytes}

    def load_state_dict(self, sd: dict) -> None:
        self.bytes, self.calls, self.control_bytes = int(sd["bytes"]), int(sd["calls"]), int(sd["control_bytes"])
