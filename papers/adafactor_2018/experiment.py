"""One row, one seed: the shared tiny-GPT language-model task (common.tasks.charlm) with any
registered optimizer (Adafactor is registered by this paper as 'adafactor'), plus what the paper is
about, memory, measured after training:

- state_bytes_per_param: the bytes of the optimizer's state tensors per model parameter, counted;
- step_peak_mib: the peak tensor memory of one more training step (forward, backward, optimizer step),
  parameters, batch and state included, from the allocator's events (common.zo.memory, as the
  zeroth-order bench measures it); deterministic for a given model and optimizer."""
from __future__ import annotations

from optrepro.tasks import charlm
from optrepro.zo.memory import optimizer_state, peak_tensor_bytes, tensors_bytes

Config = charlm.CharLMConfig


def preflight(cfg) -> None:
    charlm.preflight(cfg)


def memory(model, opt, one_step) -> dict:
    n = sum(p.numel() for p in model.parameters())
    state = optimizer_state(opt)
    peak = peak_tensor_bytes(one_step, [list(model.parameters()), state])
    return {"state_bytes_per_param": tensors_bytes(state) / n, "step_peak_mib": peak / 2 ** 20}


def run(cfg, ctx) -> dict:
    return charlm.run(cfg, ctx, probe=memory)
