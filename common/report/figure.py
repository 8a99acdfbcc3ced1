"""One way to draw a report figure: headless backend, tight layout, an atomic write (a reader
never sees half a PNG), the figure closed afterwards. Used by `repro compare` and by papers'
`report_extra` functions.

    with figure(png_path, figsize=(7, 4.5)) as (fig, ax):
        ax.plot(...)
"""
from __future__ import annotations

import contextlib
from pathlib import Path


@contextlib.contextmanager
def figure(png_path, figsize=(7.5, 4.2), dpi: int = 110, ncols: int = 1):
    """Yields (fig, ax), or (fig, axes) with `ncols` > 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(1, ncols, figsize=figsize)
    try:
        yield fig, ax
        fig.tight_layout()
        tmp = png_path.with_name(f".{png_path.name}.tmp.png")
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(png_path)
    finally:
        plt.close(fig)
