"""ZeRO-3 data parallelism over M workers with ZeRO++'s communication options (Wang et al., 2023).

The parameters are one flat float32 vector split into M equal shards; worker k owns shard k and its
optimizer state (the optimizer runs on the shard alone: an element-wise optimizer such as AdamW then
takes exactly DDP's step). Each training step:

1. forward all-gather: every worker contributes its shard, all get the full vector. qwZ
   (`quant_weights`): each shard goes as int8 codes on the symmetric grid with one float32 scale per
   block of `block` elements, and everybody computes with the dequantized weights;
2. backward all-gather: ZeRO-3 gathers the weights again for the backward pass (the same numbers, so
   here the forward's gathered weights are reused). hpZ (`hierarchical`): after the forward gather each
   node keeps the gathered weights partitioned among its `node_size` workers (a secondary shard of
   1/node_size of the model per worker), so the backward gather stays inside the node;
3. gradient reduce-scatter: the workers' gradients are averaged and worker k keeps shard k. qgZ
   (`quant_grads`): each worker sends its gradient as int4 codes with one scale per block, and the
   average is taken over the dequantized gradients (one quantization; ZeRO++'s hierarchical all-to-all
   quantizes a second time between the intra- and inter-node hops);
4. each worker steps its shard; the next step gathers the new weights.

Communication volume is counted as the ZeRO++ paper counts it, per collective and in bytes of the
tensors that collective carries for the whole model (codes and scales for the quantized ones): ZeRO-3
moves the model three times per step (two gathers and a reduce-scatter), all of it across nodes;
`cross_bytes` keeps only what crosses a node boundary (hpZ's backward gather does not) and
`intra_bytes` the rest. The arithmetic goes through common.dist.comm's sums, so the same code runs all
workers in one process or over torchrun's processes."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from optrepro.dist.comm import Comm
from optrepro.quant import dequantize, quantize, symmetric_map


def _payload(q) -> int:
    return q.codes.numel() * q.codes.element_size() + q.scale.numel() * q.scale.element_size()


class Zero3:
    def __init__(self, model: nn.Module, make_opt: Callable, comm: Comm, workers: list[int], quant_weights: bool = False,
                 hierarchical: bool = False, quant_grads: bool = False, node_size: int = 1, block: int = 256):
        """`make_opt(params) -> (optimizer, scheduler or None)` builds one worker's optimizer on its shard."""
        if node_size < 1 or comm.n % node_size:
            raise ValueError(f"node_size ({node_size}) must be >= 1 and divide the {comm.n} workers")
        if block < 2 or block % 2:
            raise ValueError(f"block must be an even integer >= 2, got {block}")
        self.model, self.comm, self.workers = model, comm, list(workers)
        self.qw, self.hp, self.qg, self.node_size, self.block = quant_weights, hierarchical, quant_grads, node_size, block
        self.params = [p for p in model.parameters()]
        self.numel = sum(p.numel() for p in self.params)
        unit = comm.n * block
        self.padded = -(-self.numel // unit) * unit
        self.shard_len = self.padded // comm.n
        flat = self._flatten([p.detach() for p in self.params])
        self.shards = [nn.Parameter(flat[w * self.shard_len:(w + 1) * self.shard_len].clone()) for w in self.workers]
        made = [make_opt([s]) for s in self.shards]
        self.opts, self.scheds = [o for o, _ in made], [s for _, s in made]
        self.wmap, self.gmap = symmetric_map(8), symmetric_map(4)
        self.cross_bytes = self.intra_bytes = 0
        self.t = 0

    def _flatten(self, tensors) -> torch.Tensor:
        flat = torch.zeros(self.padded, dtype=torch.float32)
        flat[:self.numel] = torch.cat([t.reshape(-1).float() for t in tensors])
        return flat

    def _count(self, nbytes: int, cross: bool) -> None:
        if self.comm.n > 1:
            if cross and self.comm.n > self.node_size:
                self.cross_bytes += nbytes
            else:
                self.intra_bytes += nbytes

    def gather(self, quantized: bool | None = None) -> torch.Tensor:
        """The full flat parameter vector from every worker's shard (all-gather: summed zero-padded slots,
        exact); quantized on the wire with qwZ. A collective: every process calls it."""
        q_on = self.qw if quantized is None else quantized
        slots, nbytes = [], 0
        for w, s in zip(self.workers, self.shards):
            v = s.detach()
            if q_on:
                q = quantize(v, self.wmap, 8, self.block)
                v, nbytes = dequantize(q, self.wmap), _payload(q)
            else:
                nbytes = v.numel() * v.element_size()
            slot = torch.zeros(self.padded, dtype=torch.float32)
            slot[w * self.shard_len:(w + 1) * self.shard_len] = v
            slots.append(slot)
        return self.comm._sum(slots), nbytes * self.comm.n  # the whole model's payload

    def _load(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            i = 0
            for p in self.params:
                p.copy_(flat[i:i + p.numel()].view_as(p))
                i += p.numel()

    def step(self, loss_fn: Callable[[int, nn.Module], torch.Tensor]) -> list[float]:
        flat, fwd = self.gather()
        self._count(fwd, cross=True)
        self._load(flat)
        self._count(fwd, cross=not self.hp)  # the backward gather: inside the node with hpZ
        self.model.train()
        grads, losses, gbytes = [], [], 0
        for w in self.workers:
            self.model.zero_grad(set_to_none=True)
            loss = loss_fn(w, self.model)
            loss.backward()
            g = self._flatten([p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params])
            if self.qg:
                q = quantize(g, self.gmap, 4, self.block)
                g, gbytes = dequantize(q, self.gmap), _payload(q)
            else:
                gbytes = g.numel() * g.element_size()
            grads.append(g)
            losses.append(float(loss.detach()))
        mean = self.comm._reduce(grads)
        self._count(gbytes, cross=True)
        for w, s, opt, sched in zip(self.workers, self.shards, self.opts, self.scheds):
            s.grad = mean[w * self.shard_len:(w + 1) * self.shard_len].clone()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if sched is not None:
                sched.step()
        self.t += 1
        return losses

    def sync_eval(self) -> None:
        """Loads the true (unquantized) parameters into the model for evaluation: a collective, not counted."""
        self._load(self.gather(quantized=False)[0])

    @property
    def eval_model(self) -> nn.Module:
        return self.model

    @property
    def secondary_bytes(self) -> int:
        """hpZ's extra memory per worker: its part of the node's copy of the gathered weights."""
        return self.padded // self.node_size * 4 if self.hp else 0

    def state(self) -> dict:
        return {"shards": self.shards, "opts": self.opts, "scheds": [s for s in self.scheds if s is not None],
                "comm": self.comm, "alg": self}

    def state_dict(self) -> dict:
        return {"t": self.t, "cross_bytes": self.cross_bytes, "intra_bytes": self.intra_bytes}

    def load_state_dict(self, sd: dict) -> None:
        self.t, self.cross_bytes, self.intra_bytes = int(sd["t"]), int(sd["cross_bytes"]), int(sd["intra_bytes"])
