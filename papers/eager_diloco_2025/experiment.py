"""One row, one seed: the tiny GPT trained by M workers (common.tasks.dist_lm): DiLoCo with a
blocking outer step, or with the outer all-reduce overlapped (`overlap: delayed | eager`), all
workers in this process or spread over torchrun's processes (`repro run eager_diloco_2025
--launcher torchrun --nproc 2`; the numbers are the same)."""
from __future__ import annotations

from optrepro.tasks import dist_lm

distributed = True

Config = dist_lm.DistLMConfig


def preflight(cfg) -> None:
    dist_lm.preflight(cfg)


def run(cfg, ctx) -> dict:
    return dist_lm.run(cfg, ctx)
