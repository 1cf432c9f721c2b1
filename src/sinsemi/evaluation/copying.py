"""Copying measured: does a generator make new defects, or copy the training image's?

Same-place rate. Detections j of all samples have centroids c_j (the labeller's); the training
image's defects k have centroids t_k (8-connected components of its mask). With radius r px,

    same_place_rate = |{ j : min_k ||c_j - t_k||_2 <= r }| / |{ j }|        (None without detections)

A generator that copies the defect's place scores near 1; defects of the same type at random
places score the "chance" rate of the same formula on a test set of them.

Nearest-copy distance. Sample x (C, H, W), training image T, the two references D (= T) and C_ref:

    d(x) = min_{|dy|, |dx| <= s}  RMS_{overlap}( x[y + dy, x + dx] - T[y, x] )  /  RMS( D - C_ref )

over integer shifts up to ``s`` px (default 8), the RMS taken over the overlap of the shifted
images. An exact copy (also shifted by <= s px) gives 0; the clean reference gives about 1 (the
same scene with fresh noise and without the defect); a copy plus fresh noise is about 1 as well,
so a low same-place rate and d well above 0 together say "new". ``copy_distance_median`` and
``copy_distance_p10`` are the median and 10th percentile of d over the samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sinsemi.errors import InputError

CHUNK_ELEMENTS = 1 << 22  # samples x pixels per shifted comparison (32 MiB of float64)
Centroids = Sequence[Sequence[tuple[float, float]]]  # per image: (y, x) of each detection


def mask_centroids(mask: torch.Tensor) -> list[tuple[float, float]]:
    """Centroids (y, x) of the 8-connected components of a mask (H, W)."""
    from scipy import ndimage

    m = mask.bool().cpu().numpy()
    lab, n = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))
    return [(float(y), float(x)) for y, x in ndimage.center_of_mass(m, lab, range(1, n + 1))] if n else []


def near_counts(centroids: Centroids, places: Sequence[tuple[float, float]], radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (detections within ``radius`` px of one of ``places``, detections), two int arrays (N,)."""
    p = np.asarray(places, dtype=float).reshape(-1, 2)
    near, total = [], []
    for cs in centroids:
        c = np.asarray(cs, dtype=float).reshape(-1, 2)
        total.append(len(c))
        if len(c) == 0 or len(p) == 0:
            near.append(0)
            continue
        d = np.sqrt(((c[:, None, :] - p[None, :, :]) ** 2).sum(-1)).min(1)
        near.append(int((d <= radius).sum()))
    return np.asarray(near, dtype=int), np.asarray(total, dtype=int)


def same_place_rate(centroids: Centroids, places: Sequence[tuple[float, float]], radius: float = 8.0) -> float | None:
    """Share of all detections whose centroid lies within ``radius`` px of a training defect (None: no detections)."""
    near, total = near_counts(centroids, places, radius)
    return float(near.sum() / total.sum()) if total.sum() else None


def copy_distances(samples: torch.Tensor, training: torch.Tensor, clean: torch.Tensor, *, max_shift: int = 8) -> torch.Tensor:
    """Nearest-copy distance d (N,) of samples (N, C, H, W) to the training image (C, H, W), in
    units of RMS(training - clean) (module doc); shifts up to ``max_shift`` px each way."""
    if samples.ndim != 4 or samples.shape[1:] != training.shape or clean.shape != training.shape:
        raise InputError(f"copy distance: samples {tuple(samples.shape)} must be (N, C, H, W) of the references' "
                         f"{tuple(training.shape)} (C, H, W)")
    h, w = training.shape[-2:]
    s = int(max_shift)
    if s < 0 or 2 * s >= min(h, w):
        raise InputError(f"copy distance: max_shift must be in [0, {(min(h, w) - 1) // 2}] px for {h}x{w} images, got {max_shift}")
    t = training.double()
    scale = float(torch.sqrt(((t - clean.double()) ** 2).mean()))
    if scale == 0:
        raise InputError("copy distance: the two references are identical (no scale to measure a copy by)")
    best = torch.full((samples.shape[0],), float("inf"), dtype=torch.float64)
    chunk = max(1, CHUNK_ELEMENTS // max(1, training.numel()))  # bounds memory for many or large samples
    for i in range(0, samples.shape[0], chunk):
        x = samples[i:i + chunk].double()
        for dy in range(-s, s + 1):
            for dx in range(-s, s + 1):
                # x[y + dy, x + dx] against t[y, x] on the rows/columns where both exist
                ty, tx = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
                xy, xx = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx))
                rms = ((x[..., xy, xx] - t[..., ty, tx]) ** 2).mean(dim=(1, 2, 3)).sqrt()
                best[i:i + chunk] = torch.minimum(best[i:i + chunk], rms)
    return (best / scale).float()


@dataclass
class CopyMetrics:
    """The copy measures of one row: ``same_place_rate`` (None without detections) at ``radius``
    px, per-sample nearest-copy distances ``distance`` (N,), per-image ``near`` / ``detections``
    counts (for the bootstrap), ``chance`` (the same-place rate of the new-places test set's own
    defects, when built) and the training defect centroids ``places``."""

    same_place_rate: float | None
    radius: float
    distance: list[float]
    near: list[int]
    detections: list[int]
    places: list[tuple[float, float]]
    chance: float | None = None
    max_shift: int = 8

    @property
    def distance_median(self) -> float | None:
        return float(np.median(self.distance)) if self.distance else None

    @property
    def distance_p10(self) -> float | None:
        return float(np.percentile(self.distance, 10)) if self.distance else None

    def to_dict(self) -> dict:
        return {"same_place_rate": self.same_place_rate, "same_place_radius_px": self.radius,
                "same_place_chance": self.chance, "copy_distance_median": self.distance_median,
                "copy_distance_p10": self.distance_p10, "copy_max_shift_px": self.max_shift}


def copy_metrics(samples: torch.Tensor, centroids: Centroids, training: torch.Tensor, clean: torch.Tensor,
                 training_mask: torch.Tensor, *, radius: float = 8.0, max_shift: int = 8) -> CopyMetrics:
    """Both measures for ``samples`` (N, C, H, W) whose detections have ``centroids`` (per image),
    against the training image (C, H, W), its mask (H, W) and the clean reference (C, H, W)."""
    if radius <= 0:
        raise InputError(f"copying.radius must be positive (px), got {radius}")
    places = mask_centroids(training_mask)
    near, total = near_counts(centroids, places, radius)
    d = copy_distances(samples, training, clean, max_shift=max_shift)
    rate = float(near.sum() / total.sum()) if total.sum() else None
    return CopyMetrics(same_place_rate=rate, radius=float(radius), distance=d.tolist(), near=near.tolist(),
                       detections=total.tolist(), places=places, max_shift=int(max_shift))
