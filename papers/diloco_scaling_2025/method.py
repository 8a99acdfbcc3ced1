"""DiLoCo and data-parallel training live in common.dist.localsgd (tested against torchft's DiLoCo in
tests/reference/test_diloco_torchft.py); the per-method power law L(N) = A N^alpha is
common.scaling.fit_power_law. This paper adds no method of its own: it measures how the two scale."""
from optrepro.dist.localsgd import DataParallel, DiLoCo
from optrepro.scaling import fit_power_law

__all__ = ["DiLoCo", "DataParallel", "fit_power_law"]
