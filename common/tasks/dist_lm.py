"""The tiny GPT language-model task (common.tasks.charlm) trained by M workers: synchronous data
parallelism, DiLoCo (blocking or overlapped), CO2 or NoLoCo (common.dist.localsgd), or ZeRO-3 with
ZeRO++'s quantized and hierarchical collectives (common.dist.zero), simulated in one
process or spread over torchrun's processes with the same numbers (tests/dist).

Each worker draws its own batches (`train.batch_size` windows per step, seeded by seed, worker and
step): from the whole training text (`data: iid`) or from its own contiguous part of it (`data:
shards`, non-i.i.d.). `train.steps` is the number of steps each worker takes, so every row with the
same workers and steps processes the same tokens. Reported: the validation loss of the (global)
model (worker 0's copy where workers keep their own), the algorithm's communication per worker
counted at the collectives (`comm_mib`, payload into all-reduces or group exchanges; `comm_rounds`),
NoLoCo's `weight_std` (how far the workers' copies drift apart), the tokens processed and the model's non-embedding parameters
(`n_params`, what scaling fits use). ZeRO rows count the volume of their gathers and reduce-scatters
for the whole model (`comm_mib`), the part that crosses nodes (`cross_mib`) and hpZ's extra memory
(`secondary_mib`)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from torch import nn

from optrepro.dist.comm import Comm
from optrepro.dist.localsgd import CO2, DataParallel, DiLoCo, NoLoCo, OverlappedDiLoCo
from optrepro.dist.world import local_workers, worker_generator, world
from optrepro.dist.zero import Zero3
from optrepro.errors import ConfigError, Diverged
from optrepro.models import tiny_gpt
from optrepro.optim import build_optimizer, make_scheduler
from optrepro.run import RunContext
from optrepro.tasks import charlm

distributed = True
"""Runs under `--launcher torchrun --nproc N` (workers split over the processes)."""

METHODS = ("sync", "diloco", "noloco", "co2", "zero3")
DATA = ("iid", "shards")
OVERLAPS = ("none",) + OverlappedDiLoCo.MODES


@dataclass
class DistLMConfig(charlm.CharLMConfig):
    method: str = "diloco"
    """sync (gradients averaged every step) | diloco (inner steps, then an outer step) | noloco (inner
    steps, then each worker averages with a random group of `group_size` and takes its own outer
    step: common.dist.localsgd.NoLoCo; outer_nesterov does not apply) | co2 (inner steps, the outer
    all-reduce overlapped with the next round, heavy-ball outer momentum with `gap_penalty` and
    `clip`: common.dist.localsgd.CO2; outer_nesterov does not apply) | zero3 (sync's arithmetic with
    parameters, gradients and optimizer state partitioned over the workers, and ZeRO++'s options
    quant_weights, hierarchical, quant_grads: common.dist.zero.Zero3)."""
    workers: int = 4
    """M: replicas, each with its own data; split over --nproc processes under torchrun."""
    sync_every: int = 50
    """DiLoCo's H: inner steps between outer steps (train.steps must be a multiple of it)."""
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    outer_nesterov: bool = True
    group_size: int = 2
    """noloco: workers per averaging group (1: no communication; `workers`: all of them)."""
    gap_penalty: float = 1.0
    """co2: the staleness gap penalty lambda (the outer gradient is divided by it)."""
    clip: float = 0.0
    """co2: elementwise clip of the outer momentum (0: none)."""
    quant_weights: bool = False
    """zero3: ZeRO++'s qwZ (int8 weights in the all-gather)."""
    hierarchical: bool = False
    """zero3: ZeRO++'s hpZ (a secondary weight partition per node; the backward gather stays in the node)."""
    quant_grads: bool = False
    """zero3: ZeRO++'s qgZ (int4 gradients in the reduce-scatter)."""
    node_size: int = 2
    """zero3: workers per node (what crosses a node boundary is counted apart)."""
    qblock: int = 256
    """zero3: elements per quantization block (one float32 scale each)."""
    overlap: str = "none"
    """diloco only: none (blocking outer step) | delayed (the outer all-reduce overlaps the next round,
    its average applied one round late) | eager (the same, with the worker's own outer gradient
    applied at once): common.dist.localsgd.OverlappedDiLoCo."""
    data: str = "iid"
    """iid | shards (worker w reads only the w-th of M contiguous parts of the training text)."""


def preflight(cfg: DistLMConfig) -> None:
    charlm.preflight(cfg)
    if cfg.method not in METHODS:
        raise ConfigError(f"method '{cfg.method}' unknown; valid: {', '.join(METHODS)}")
    if cfg.overlap not in OVERLAPS:
        raise ConfigError(f"overlap '{cfg.overlap}' unknown; valid: {', '.join(OVERLAPS)}")
    if cfg.overlap != "none" and cfg.method != "diloco":
        raise ConfigError(f"overlap '{cfg.overlap}' applies to method diloco, not {cfg.method}")
    if cfg.data not in DATA:
        raise ConfigError(f"data '{cfg.data}' unknown; valid: {', '.join(DATA)}")
    if cfg.workers < 1 or cfg.sync_every < 1:
        raise ConfigError(f"workers ({cfg.workers}) and sync_every ({cfg.sync_every}) must be >= 1")
    if cfg.tokens or cfg.flops:
        raise ConfigError("the distributed task counts train.steps per worker; tokens/flops budgets are not supported")
    if cfg.method == "noloco" and (cfg.group_size < 1 or cfg.workers % cfg.group_size):
        raise ConfigError(f"group_size ({cfg.group_size}) must be >= 1 and divide workers ({cfg.workers})")
    if cfg.method == "co2" and not (cfg.gap_penalty > 0 and cfg.clip >= 0):
        raise ConfigError(f"gap_penalty must be > 0 and clip >= 0 (0: none), got {cfg.gap_penalty}, {cfg.clip}")
    if cfg.method == "zero3" and (cfg.node_size < 1 or cfg.workers % cfg.node_size or cfg.qblock < 2 or cfg.qblock % 2):
        raise ConfigError(f"node_size ({cfg.node_size}) must divide workers ({cfg.workers}) and qblock ({cfg.qblock}) "
                          "be an even integer >= 2")
    if cfg.method != "zero3" and (cfg.quant_weights or cfg.hierarchical or cfg.quant_grads):
        raise ConfigError("quant_weights, hierarchical and quant_grads apply to method zero3")
    if cfg.method in ("diloco", "noloco", "co2") and cfg.train.steps % cfg.sync_every:
        raise ConfigError(f"train.steps ({cfg.train.steps}) must be a multiple of sync_every ({cfg.sync_every}): "
                          f"the model is evaluated after an outer step")
    if cfg.method in ("diloco", "noloco", "co2") and cfg.train.eval_every % cfg.sync_every:
        raise ConfigError(f"train.eval_every ({cfg.train.eval_every}) must be a multiple of sync_every "
                          f"({cfg.sync_every}) for {cfg.method}")
    if not (cfg.outer_lr > 0 and 0 <= cfg.outer_momentum < 1):
        raise ConfigError(f"outer_lr must be > 0 and outer_momentum in [0, 1), got {cfg.outer_lr}, {cfg.outer_momentum}")


def run(cfg: DistLMConfig, ctx: RunContext) -> dict:
    corpus = charlm.load_corpus(cfg)
    model = tiny_gpt(corpus.vocab_size, cfg.context, cfg.d_model, cfg.n_layer, cfg.n_head, cfg.arch).to(cfg.device)
    steps = cfg.train.steps
    oc = cfg.optim
    w = getattr(ctx, "world", None) or world()
    workers = local_workers(cfg.workers, w)
    comm = Comm(cfg.workers, w)

    def make_inner(params):
        opt = build_optimizer(params, oc)
        return opt, make_scheduler(opt, oc, steps)

    if cfg.method == "diloco" and cfg.overlap != "none":
        alg = OverlappedDiLoCo(model, make_inner, comm, workers, cfg.sync_every, cfg.outer_lr, cfg.outer_momentum,
                               cfg.outer_nesterov, mode=cfg.overlap)
    elif cfg.method == "co2":
        alg = CO2(model, make_inner, comm, workers, cfg.sync_every, cfg.outer_lr, cfg.outer_momentum, cfg.gap_penalty,
                  cfg.clip)
    elif cfg.method == "zero3":
        alg = Zero3(model, make_inner, comm, workers, cfg.quant_weights, cfg.hierarchical, cfg.quant_grads,
                    cfg.node_size, cfg.qblock)
    elif cfg.method == "noloco":
        alg = NoLoCo(model, make_inner, comm, workers, cfg.sync_every, cfg.outer_lr, cfg.outer_momentum,
                     cfg.group_size, seed=cfg.seed)
    elif cfg.method == "diloco":
        alg = DiLoCo(model, make_inner, comm, workers, cfg.sync_every, cfg.outer_lr, cfg.outer_momentum,
                     cfg.outer_nesterov)
    else:
        alg = DataParallel(model, *make_inner(model.parameters()), comm, workers)
    spread = not (cfg.corpus == "pydoc" and cfg.tokenizer == "char")

    def loss_fn(step):
        def f(w: int, m: nn.Module):
            x, y = corpus.batch("train", cfg.train.batch_size, cfg.context, worker_generator(cfg.seed, w, step),
                                part=(w, cfg.workers) if cfg.data == "shards" else None)
            return nn.functional.cross_entropy(m(x.to(cfg.device)).flatten(0, 1), y.to(cfg.device).flatten())
        return f

    def evaluate() -> dict:
        out = {"comm_mib": comm.bytes / 2**20, "comm_rounds": float(comm.calls), "cross_mib": comm.bytes / 2**20,
               "secondary_mib": 0.0,
               "tokens": float(steps * cfg.train.batch_size * cfg.context * cfg.workers),
               "n_params": float(model.n_params())}
        if hasattr(alg, "weight_std"):  # a collective: every rank takes part
            out["weight_std"] = alg.weight_std()
        if hasattr(alg, "sync_eval"):  # ZeRO: gather the true weights (a collective) before evaluating
            alg.sync_eval()
            out.update(comm_mib=(alg.cross_bytes + alg.intra_bytes) / 2**20, cross_mib=alg.cross_bytes / 2**20,
                       secondary_mib=alg.secondary_bytes / 2**20, comm_rounds=3.0 * alg.t)
        if w.main:  # only rank 0 writes; the others skip the evaluation
            out["val_loss"] = charlm.val_loss(alg.eval_model, corpus, cfg.train.batch_size, cfg.context,
                                              cfg.eval_batches, spread)
            out["perplexity"] = math.exp(out["val_loss"])
        return out

    tc = cfg.train
    for s in ctx.steps(steps, alg.state()):
        losses = alg.step(loss_fn(s - 1))
        if s % tc.log_every == 0 or s == steps:
            loss = comm.mean_scalars([[v] for v in losses])[0]  # every rank takes part, at the same steps
            if not math.isfinite(loss):
                ctx.log(s, loss=loss)
                raise Diverged(s, "loss", loss)
            sent = alg.cross_bytes + alg.intra_bytes if hasattr(alg, "sync_eval") else comm.bytes
            ctx.log(s, loss=loss, comm_mib=sent / 2**20)
        if tc.eval_every and s % tc.eval_every == 0 and s != steps:
            ctx.log(s, **evaluate())
    final = evaluate()
    ctx.log(steps, **final)
    return final


