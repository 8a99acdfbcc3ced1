"""Distributed training on torch.distributed, and the same algorithms with M workers simulated in
one process (tested equal): world (ranks, workers, seeding, run-layer collectives), comm (collectives
with byte accounting), localsgd (synchronous data parallelism, DiLoCo), launch (`--launcher
torchrun`), entry (one rank)."""
