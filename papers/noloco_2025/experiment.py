"""One row, one seed: the tiny GPT trained by M workers (common.tasks.dist_lm): NoLoCo (`method:
noloco`, groups of `group_size`) or DiLoCo, all workers in this process or spread over torchrun's
processes (`repro run noloco_2025 --launcher torchrun --nproc 2`; the numbers are the same)."""
from optrepro.tasks.dist_lm import DistLMConfig as Config  # noqa: F401
from optrepro.tasks.dist_lm import preflight, run  # noqa: F401

distributed = True
