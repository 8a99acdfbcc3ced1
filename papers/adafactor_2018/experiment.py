"""One row, one seed: the shared tiny-GPT language-model task (common.tasks.charlm) with any
registered optimizer (Adafactor is registered by this paper as 'adafactor'), plus what the paper is
about, memory, measured after training (common.zo.memory.training_memory):

- state_bytes_per_param: the bytes of the optimizer's state tensors per model parameter, counted;
- step_peak_mib: the peak tensor memory of one more training step (forward, backward, optimizer step),
  parameters, batch and state included, from the allocator's events (common.zo.memory, as the
  zeroth-order bench and `repro bench memory` measure it: common.zo.memory.step_memory);
  deterministic for a given model and optimizer."""
from __future__ import annotations

from optrepro.tasks import charlm
from optrepro.zo.memory import training_memory

Config = charlm.CharLMConfig


def preflight(cfg) -> None:
    charlm.preflight(cfg)


def run(cfg, ctx) -> dict:
    return charlm.run(cfg, ctx, probe=training_memory)
