"""One row, one seed: the tiny GPT trained by M workers (common.tasks.dist_lm) with synchronous data
parallelism, or ZeRO-3 (`method: zero3`) with ZeRO++'s options (quant_weights: qwZ, hierarchical: hpZ,
quant_grads: qgZ); all workers in this process or spread over torchrun's processes (`repro run
zeropp_2023 --launcher torchrun --nproc 2`; the numbers are the same)."""
from optrepro.tasks.dist_lm import DistLMConfig as Config  # noqa: F401
from optrepro.tasks.dist_lm import preflight, run  # noqa: F401

distributed = True
