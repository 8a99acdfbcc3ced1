"""The sample figure of a guidance table's report: one panel per row, seed 0's samples.pt (digits as
an image grid, one line per class; mixture points coloured by class over the true modes). Papers
expose it as `report_extra = samples_figure` in their experiment.py."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from optrepro.io import atomic_torch_save, safe_torch_load
from optrepro.report.figure import figure


def save_samples(run_dir, x, labels, per_class: int, data: str) -> None:
    """Write <run_dir>/samples.pt: the first `per_class` samples of each class, which `samples_figure` draws."""
    keep = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in labels.unique().tolist()])
    atomic_torch_save(Path(run_dir) / "samples.pt", {"x": x[keep].float(), "labels": labels[keep], "data": data})


def samples_figure(doc: dict, png: Path, runs: Path) -> list[str]:
    rows = [r for r in doc["rows"] if (Path(runs) / r / "seed0" / "samples.pt").exists()]
    if not rows:
        return []
    ncols = min(4, len(rows))
    nrows = math.ceil(len(rows) / ncols)
    with figure(png, figsize=(3.2 * ncols, 3.2 * nrows), ncols=1) as (fig, _):
        fig.clf()
        for k, row in enumerate(rows):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            s = safe_torch_load(Path(runs) / row / "seed0" / "samples.pt")
            x, y = s["x"], s["labels"]
            if s["data"] == "digits":
                classes = y.unique().tolist()
                per = int((y == classes[0]).sum())
                grid = torch.full((len(classes) * 9, per * 9), 1.0)
                for i, c in enumerate(classes):
                    for j, img in enumerate(x[y == c]):
                        grid[i * 9:i * 9 + 8, j * 9:j * 9 + 8] = img[0].clamp(-1, 1)
                ax.imshow(grid.numpy(), cmap="gray_r", vmin=-1, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                from optrepro.diffusion.mixture import GaussianMixture
                mix = GaussianMixture.ring()
                ax.scatter(mix.means[:, 0], mix.means[:, 1], c=mix.labels, cmap="tab10", vmin=0, vmax=9,
                           marker="x", s=60)
                ax.scatter(x[:, 0], x[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=6, alpha=0.7)
                ax.set_aspect("equal")
                ax.set_xlim(-3.5, 3.5)
                ax.set_ylim(-3.5, 3.5)
            ax.set_title(row, fontsize=9)
    return ["", "Samples of each row (seed 0; digits: one line per class, mixture: points coloured by their "
            "class, crosses at the true modes):", "", f"![samples]({png.name})"]
