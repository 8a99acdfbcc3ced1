"""ZeRO's stages are torch's implementations (torch.distributed.optim.ZeroRedundancyOptimizer for
stage 1, torch.distributed.fsdp.fully_shard for stage 3), run by experiment.rank_main on processes
from common.dist.spawn; this module holds the paper's own content, the per-device formula."""
from optrepro.papers.zero_2019.experiment import formula_bytes

__all__ = ["formula_bytes"]
