"""DiLoCo lives in common.dist.localsgd (DiLoCo, DataParallel) so that the other low-communication
papers (eager updates, NoLoCo, DiLoCo scaling laws) share it; this module only names it."""
from optrepro.dist.localsgd import DataParallel, DiLoCo

__all__ = ["DiLoCo", "DataParallel"]
