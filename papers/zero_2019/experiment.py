"""One row, one seed: an MLP on digits trained data-parallel by `nproc` real processes (gloo,
common.dist.spawn) with the optimizer state and gradients (ZeRO-1: torch's ZeroRedundancyOptimizer
under DDP) or everything (ZeRO-3: FSDP2's fully_shard) partitioned over the ranks, against plain
DDP. The global batch is split over the ranks, so every mode computes the same training step.

After the last step (gradients still held) each rank counts the bytes it holds for the model states:
its parameters, gradients and optimizer state (the local shard of a DTensor). The table reports the
largest rank's, beside ZeRO's formula for full-precision Adam with Psi parameters over N ranks
(the paper's K = 12 for mixed precision becomes: parameters 4, gradients 4, Adam moments 8 bytes):
DDP 16 Psi, ZeRO-1 (optimizer states) 8 Psi + 8 Psi / N, ZeRO-3 (everything) 16 Psi / N."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optrepro.config import BaseConfig
from optrepro.errors import ConfigError

MODES = ("ddp", "zero1", "zero3")


@dataclass
class Config(BaseConfig):
    mode: str = "ddp"
    """ddp | zero1 (optimizer states partitioned) | zero3 (parameters, gradients and states: FSDP2)."""
    nproc: int = 2
    """Processes (ranks) the run spawns on this machine."""
    width: int = 256
    depth: int = 6
    """Hidden layers of `width` (equal layers, so ZeRO-1's whole-tensor partition can balance)."""
    steps: int = 60
    batch_size: int = 64
    """The global batch: each rank takes batch_size / nproc of it."""
    lr: float = 1.0e-3


def preflight(cfg: Config) -> None:
    if cfg.mode not in MODES:
        raise ConfigError(f"mode '{cfg.mode}' unknown; valid: {', '.join(MODES)}")
    if cfg.nproc < 1 or cfg.batch_size % cfg.nproc:
        raise ConfigError(f"batch_size ({cfg.batch_size}) must be a multiple of nproc ({cfg.nproc}) >= 1")
    if cfg.width < 1 or cfg.depth < 0 or cfg.steps < 1:
        raise ConfigError("width and steps must be >= 1, depth >= 0")


def formula_bytes(mode: str, psi: int, n: int) -> float:
    """ZeRO's per-rank model-state memory for full-precision Adam (bytes)."""
    return {"ddp": 16.0 * psi, "zero1": 8.0 * psi + 8.0 * psi / n, "zero3": 16.0 * psi / n}[mode]


def make_model(cfg: Config) -> nn.Sequential:
    layers, d = [nn.Flatten()], 64
    for _ in range(cfg.depth + 1):
        layers += [nn.Linear(d, cfg.width), nn.Tanh()]
        d = cfg.width
    layers.append(nn.Linear(d, 10))
    return nn.Sequential(*layers)


def _local_bytes(t) -> int:
    if t is None:
        return 0
    t = t.to_local() if hasattr(t, "to_local") else t
    return t.numel() * t.element_size()


def rank_main(world, cfg: Config) -> dict:
    """What one rank runs (common.dist.spawn): the training, then the bytes this rank holds."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from optrepro.data.core import digits
    from optrepro.train import epoch_batches
    preflight(cfg)
    torch.manual_seed(cfg.seed)  # the same initial model on every rank
    model = make_model(cfg)
    psi = sum(p.numel() for p in model.parameters())
    if cfg.mode == "zero3":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        mesh = init_device_mesh("cpu", (world.size,))
        for m in model:
            if isinstance(m, nn.Linear):
                fully_shard(m, mesh=mesh)
        fully_shard(model, mesh=mesh)
        net, opt = model, torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    else:
        net = DDP(model)
        if cfg.mode == "zero1":
            from torch.distributed.optim import ZeroRedundancyOptimizer
            opt = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=torch.optim.AdamW, lr=cfg.lr)
        else:
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    data = digits(cfg.seed)
    idx = epoch_batches(len(data.x_train), cfg.batch_size, cfg.seed)
    per = cfg.batch_size // world.size
    losses = []
    for step in range(cfg.steps):
        i = idx(step)[world.rank * per:(world.rank + 1) * per]
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(data.x_train[i]), data.y_train[i])
        loss.backward()
        opt.step()
        g = loss.detach().clone()
        dist.all_reduce(g)
        losses.append(float(g) / world.size)
    inner = opt.optim if cfg.mode == "zero1" else opt
    held = {"param_bytes": sum(_local_bytes(p) for p in model.parameters()),
            "grad_bytes": sum(_local_bytes(p.grad) for p in model.parameters()),
            "state_bytes": sum(_local_bytes(t) for s in inner.state.values() for t in s.values()
                               if torch.is_tensor(t) and t.dim() > 0)}
    with torch.no_grad():
        out = net(data.x_test)
        acc = float((out.argmax(1) == data.y_test).float().mean()) * 100
        test_loss = float(nn.functional.cross_entropy(out, data.y_test))
    return {"psi": psi, "losses": losses, "test_acc": acc, "test_loss": test_loss, **held}


def run(cfg: Config, ctx) -> dict:
    from optrepro.dist.spawn import spawn
    ctx.no_checkpoint(f"{cfg.steps} steps over {cfg.nproc} spawned processes, seconds")
    ranks = spawn(rank_main, cfg.nproc, cfg)
    r0 = ranks[0]
    for s, loss in enumerate(r0["losses"], start=1):
        if s % 10 == 0 or s == cfg.steps:
            ctx.log(s, loss=loss)
    held = {k: float(max(r[k] for r in ranks)) for k in ("param_bytes", "grad_bytes", "state_bytes")}
    states = max(r["param_bytes"] + r["grad_bytes"] + r["state_bytes"] for r in ranks)
    formula = formula_bytes(cfg.mode, r0["psi"], cfg.nproc)
    return {"final_loss": r0["losses"][-1], "test_acc": r0["test_acc"], "test_loss": r0["test_loss"],
            **held, "model_state_bytes": float(states), "formula_bytes": formula,
            "measured_over_formula": states / formula, "bytes_per_param": states / r0["psi"]}
