"""Eager updates (Kale, Douillard and Donchev, 2025) live in common.dist.localsgd beside DiLoCo
(OverlappedDiLoCo, modes 'delayed' and 'eager'); this module names them."""
from optrepro.dist.localsgd import DiLoCo, OverlappedDiLoCo

__all__ = ["DiLoCo", "OverlappedDiLoCo"]
