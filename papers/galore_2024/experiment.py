"""One row, one seed: the shared tiny-GPT language-model task (common.tasks.charlm) with any
registered optimizer (GaLore is registered by this paper as 'galore_adamw'), plus memory measured
after training (common.zo.memory.training_memory): the optimizer's state bytes per model parameter,
counted (GaLore's include its projection bases), and the peak tensor memory of one more training
step from the allocator's events, as adafactor_2018 and `repro bench memory` measure it."""
from __future__ import annotations

from optrepro.tasks import charlm
from optrepro.zo.memory import training_memory

Config = charlm.CharLMConfig


def preflight(cfg) -> None:
    charlm.preflight(cfg)


def run(cfg, ctx) -> dict:
    return charlm.run(cfg, ctx, probe=training_memory)
