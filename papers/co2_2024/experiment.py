"""One row, one seed: the tiny GPT trained by M workers (common.tasks.dist_lm): CO2 (`method: co2`, the
outer all-reduce overlapped with the next round), blocking local SGD (parameter averaging) and DiLoCo,
or synchronous data parallelism; all workers in this process or spread over torchrun's processes
(`repro run co2_2024 --launcher torchrun --nproc 2`; the numbers are the same)."""
from optrepro.tasks.dist_lm import DistLMConfig as Config  # noqa: F401
from optrepro.tasks.dist_lm import preflight, run  # noqa: F401

distributed = True
