"""Defect-count histogram and spatial heat-map of defect centroids (the paper's Figure 4), as one PNG.

A generator that copies the training image puts every defect at the same place (one hot cell, all
counts 1); one that has learnt the structure spreads them. The training image's own defects are
marked (cyan circles of the same-place radius, on a black halo so they show on any cell), so a hot
cell there reads as copying. The colour scale is a square root (a few hot cells do not wash out the
rest at high counts), read off a labelled colour bar (no numbers in the cells to overlap), and the
histogram groups counts above 10, so its labels fit at any count. Pure matplotlib (Agg), atomic write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def centroid_density(centroids: Sequence[Sequence[tuple[float, float]]], size: tuple[int, int], bins: int = 12) -> np.ndarray:
    """2-D histogram (bins x bins) of all defect centroids (y, x) over an image of ``size`` (H, W)."""
    pts = np.array([c for per in centroids for c in per], dtype=float).reshape(-1, 2)
    h, w = size
    hist, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=bins, range=[[0, h], [0, w]])
    return hist


def save_heatmap(counts: Sequence[int], centroids: Sequence[Sequence[tuple[float, float]]], size: tuple[int, int],
                 path: str | os.PathLike, *, bins: int = 12, title: str = "", marks: Sequence[tuple[float, float]] = (),
                 mark_radius: float = 0.0) -> None:
    """Write the count histogram (left) and the centroid heat-map (right) to ``path`` (PNG);
    ``marks``: the training defects' centroids (y, x), circled with ``mark_radius`` px."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinsemi.data.io import atomic_path

    from matplotlib import patheffects
    from matplotlib.colors import PowerNorm
    from matplotlib.patches import Circle

    counts = np.asarray(list(counts), dtype=int)
    dens = centroid_density(centroids, size, bins)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=110)
    cap = 10  # counts above this share one "10+" bar
    top = min(int(counts.max()), cap) if counts.size else 0
    a0.bar(np.arange(top + 1), np.bincount(np.minimum(counts, cap), minlength=top + 1), color="0.35")
    a0.set_xlabel("defects per image")
    a0.set_ylabel("images")
    a0.set_title(f"mean {counts.mean():.2f} over {counts.size} images" if counts.size else "no images")
    a0.set_xticks(np.arange(top + 1), [str(i) if i < cap else f"{cap}+" for i in range(top + 1)])
    h, w = size
    im = a1.imshow(dens, extent=(0, w, h, 0), cmap="magma", interpolation="nearest",
                   norm=PowerNorm(0.5, vmin=0, vmax=max(1.0, float(dens.max()))))
    halo = [patheffects.withStroke(linewidth=3.5, foreground="black")]  # cyan on a black halo: seen on any cell
    for y, x in marks:
        a1.add_patch(Circle((x, y), max(float(mark_radius), 1.5), fill=False, edgecolor="cyan", linewidth=1.5,
                            path_effects=halo))
        a1.plot([x], [y], marker="+", color="cyan", markersize=7, path_effects=halo)
    a1.set_xlim(0, w)
    a1.set_ylim(h, 0)
    if len(marks):  # the key on a dark box: readable over hot (light) cells too
        a1.text(0.02, 0.98, "○ training defect", color="cyan", fontsize=8, va="top", ha="left", transform=a1.transAxes,
                bbox=dict(boxstyle="round,pad=0.2", facecolor="black", alpha=0.7, edgecolor="none"))
    a1.set_title(f"defect centroids ({int(dens.sum())})")
    a1.set_xlabel("x (px)")
    a1.set_ylabel("y (px)")
    bar = fig.colorbar(im, ax=a1, fraction=0.046, pad=0.04)
    bar.set_label("centroids per cell (√ scale)", fontsize=8)  # the counts are read off the bar, never printed in cells
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
