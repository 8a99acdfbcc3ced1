"""Classic 2-D optimization test functions with known minimizers (for trajectory studies)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class TestFunction:
    name: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimum: tuple
    start: tuple
    """A default starting point (runs add a seeded perturbation)."""

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        return self.f(xy[..., 0], xy[..., 1])

    def dist(self, xy: torch.Tensor) -> float:
        return float(torch.linalg.vector_norm(xy.detach() - torch.tensor(self.optimum, dtype=xy.dtype)))


FUNCTIONS = {
    # The three toy problems of AdaBelief (arXiv:2010.07468, Fig. 3): all minimized at the origin.
    "abs": TestFunction("abs", lambda x, y: x.abs() + y.abs(), (0.0, 0.0), (-1.0, 1.5)),
    "abs_ill": TestFunction("abs_ill", lambda x, y: (x + y).abs() + (x - y).abs() / 10, (0.0, 0.0), (-1.0, 1.5)),
    "quad_ill": TestFunction("quad_ill", lambda x, y: (x + y) ** 2 + (x - y) ** 2 / 10, (0.0, 0.0), (-1.0, 1.5)),
    # Standard benchmarks.
    "beale": TestFunction("beale", lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2
                          + (2.625 - x + x * y ** 3) ** 2, (3.0, 0.5), (1.0, 1.5)),
    "rosenbrock": TestFunction("rosenbrock", lambda x, y: (1 - x) ** 2 + 100 * (y - x ** 2) ** 2, (1.0, 1.0),
                               (-1.5, 2.0)),
}
