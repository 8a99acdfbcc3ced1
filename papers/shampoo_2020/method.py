"""Scalable Shampoo (Anil, Gupta, Koren, Regan and Singer 2020): the optimizer is
common.curvature.shampoo.Shampoo, shared so that other Shampoo papers (shampoo_perspective_2024)
can run it as a row without importing this paper. See that module for the equations; its reference
tests (pytorch-optimizer's ScalableShampoo, step by step) are tests/reference/test_shampoo.py.

The class's defaults are this paper's settings for the mini tables (`optim.kwargs` may override
them): Adagrad grafting, blocks of 128, preconditioners recomputed every 10 steps by eigh with a
ridge of 1e-6 lambda_max, the inverse 4th root of each side of a matrix (twice the number of
dimensions in general), Nesterov momentum 0.9 and beta2 0.999 for the statistics; the first 10
steps move with the graft alone."""
from __future__ import annotations

from optrepro.curvature.shampoo import Shampoo  # noqa: F401  (the method; built by common.curvature.optimizers)
