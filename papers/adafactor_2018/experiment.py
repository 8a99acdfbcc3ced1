"""One row, one seed: the shared tiny-GPT language-model task (common.tasks.charlm) with any
registered optimizer (Adafactor is registered by this paper as 'adafactor'), plus what the paper is
about, memory, measured after training:

- state_bytes_per_param: the bytes of the optimizer's state tensors per model parameter, counted;
- step_peak_mib: the peak tensor memory of one more training step (forward, backward, optimizer step),
  parameters, batch and state included, from the allocator's events (common.zo.memory, as the
  zeroth-order bench and `repro bench memory` measure it: common.zo.memory.step_memory);
  deterministic for a given model and optimizer."""
from __future__ import annotations

from optrepro.tasks import charlm
from optrepro.zo.memory import step_memory

Config = charlm.CharLMConfig


def preflight(cfg) -> None:
    charlm.preflight(cfg)


def memory(model, opt, one_step) -> dict:
    m = step_memory(model, opt, one_step)
    return {"state_bytes_per_param": m["state_bytes_per_param"], "step_peak_mib": m["peak_mib"]}


def run(cfg, ctx) -> dict:
    return charlm.run(cfg, ctx, probe=memory)
