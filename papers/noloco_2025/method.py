"""NoLoCo (Kolehmainen et al., 2025) lives in common.dist.localsgd beside DiLoCo (NoLoCo, with the
group exchange common.dist.comm.Comm.group_mean); this module names it."""
from optrepro.dist.localsgd import DiLoCo, NoLoCo

__all__ = ["DiLoCo", "NoLoCo"]
