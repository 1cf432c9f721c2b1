"""Proving the labeller on given images: insert a simulated defect at a known interior place and
check that it is found there (recall, localisation) and that nothing else is.

``insert_defects`` adds a :class:`~sinsemi.data.testsets.DefectResidual` to each image, moved along
the lines by a random amount and across them by whole line periods plus the image's own global
line shift (so a bridge still joins two lines), keeping its centroid ``margin`` px inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sinsemi.data.testsets import DefectResidual
from sinsemi.errors import InputError
from sinsemi.metrics.labeller import (LabellerConfig, LabelResult, _gray, global_shift, label_defects, line_orientation,
                                      line_period)


@dataclass
class Inserted:
    """Images (N, C, H, W) with one inserted defect each, its true centroid (N, 2) (y, x) px."""

    images: torch.Tensor
    centroids: np.ndarray


@dataclass
class ProbeScore:
    """Recall of the inserted defects (a detection centroid within ``tolerance`` px), their
    localisation error (px; mean and max over found ones), and every other detection, split into the
    border band and the interior (per image)."""

    n_images: int
    recall: float
    loc_mean: float
    loc_max: float
    other_per_image: float
    other_border: int
    other_interior: int
    tolerance: float


def border_split(centroids: list[list[tuple[float, float]]], size: tuple[int, int], band: int) -> tuple[int, int]:
    """(border, interior) counts of centroids (y, x) per image over images of ``size`` (H, W): a
    centroid within ``band`` px of an edge is a border one."""
    h, w = size
    pts = [c for per in centroids for c in per]
    border = sum(1 for y, x in pts if min(y, x, h - 1 - y, w - 1 - x) < band)
    return border, len(pts) - border


def insert_defects(images: torch.Tensor, clean_reference: torch.Tensor, res: DefectResidual, *, seed: int = 0,
                   max_along: float = 25.0, margin: int = 17, blur_sigma: float = 1.0) -> Inserted:
    """Add ``res`` to every image (N, C, H, W) (vertical lines; horizontal ones are transposed), at a
    seeded random place: along the lines by up to ``max_along`` px, across by whole periods, aligned
    with the image's line shift relative to ``clean_reference`` (C, H, W)."""
    from scipy import ndimage

    ref = _gray(clean_reference)
    if line_orientation(ref) != "vertical":
        raise InputError("insert_defects handles vertical lines (transpose horizontal ones first)")
    h, w = ref.shape
    if tuple(res.residual.shape) != (h, w):
        raise InputError(f"defect residual {tuple(res.residual.shape)} does not match the images {(h, w)}")
    cfg = LabellerConfig(blur_sigma=blur_sigma)
    template = ndimage.gaussian_filter(ref, blur_sigma, mode="nearest").mean(axis=0)
    period = line_period(template)
    rng = np.random.default_rng(seed)
    cy, cx = res.centroid
    out, cents = [], []
    r = res.residual.double().numpy()
    for x in images:
        g = ndimage.gaussian_filter(_gray(x), blur_sigma, mode="nearest")
        s0 = global_shift(g, template, cfg)  # the image's lines sit s0 px right of the reference's
        ks = [k for k in range(-8, 9) if margin <= cx + s0 + k * period <= w - 1 - margin]
        if not ks:
            raise InputError("no line position keeps the inserted defect inside the image")
        dx = s0 + ks[int(rng.integers(len(ks)))] * period
        lo, hi = max(-max_along, margin - cy), min(max_along, h - 1 - margin - cy)
        dy = float(rng.uniform(lo, hi))
        moved = ndimage.shift(r, (dy, dx), order=1, mode="constant", cval=0.0)
        out.append(x + torch.from_numpy(moved).to(x.dtype)[None])
        cents.append((cy + dy, cx + dx))
    return Inserted(images=torch.stack(out), centroids=np.array(cents))


def score_inserted(labels: LabelResult, inserted: Inserted, *, tolerance: float = 5.0, band: int = 17) -> ProbeScore:
    """Match each image's inserted defect to its nearest detection; every other detection is 'other'."""
    found, errs, others = 0, [], []
    for cents, true in zip(labels.centroids, inserted.centroids):
        if cents:
            d = np.hypot(*(np.array(cents) - true).T)
            j = int(np.argmin(d))
            if d[j] <= tolerance:
                found += 1
                errs.append(float(d[j]))
                cents = cents[:j] + cents[j + 1:]
        others.append(list(cents))
    n = len(inserted.centroids)
    size = tuple(labels.masks.shape[-2:])
    b, i = border_split(others, size, band)
    return ProbeScore(n_images=n, recall=found / max(n, 1), loc_mean=float(np.mean(errs)) if errs else float("nan"),
                      loc_max=float(np.max(errs)) if errs else float("nan"), other_per_image=(b + i) / max(n, 1),
                      other_border=b, other_interior=i, tolerance=tolerance)


def probe_labeller(images: torch.Tensor, clean_reference: torch.Tensor, res: DefectResidual, cfg: LabellerConfig, *,
                   seed: int = 0, tolerance: float = 5.0) -> ProbeScore:
    """Insert one defect into each image (N, C, H, W), label, score."""
    ins = insert_defects(images, clean_reference, res, seed=seed, margin=cfg.border)
    return score_inserted(label_defects(ins.images, clean_reference, cfg), ins, tolerance=tolerance, band=cfg.border)


def reference_residual(defect: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, *, preset: str | None = None,
                       preset_seed: int = 0, window: int = 10) -> DefectResidual:
    """The defect to insert: the simulator's noise-free residual when the references are a preset's
    pair, else the references' own difference (C, H, W) inside the mask dilated by ``window`` px."""
    from scipy import ndimage

    from sinsemi.data.testsets import defect_residual

    if preset is not None:
        return defect_residual(preset, preset_seed)
    m = mask.cpu().numpy().astype(bool)
    if not m.any():
        raise InputError("the defect reference's mask is empty: no defect to insert")
    win = ndimage.binary_dilation(m, iterations=window)
    r = (_gray(defect) - _gray(clean)) * win
    yy, xx = np.nonzero(m)
    return DefectResidual(residual=torch.from_numpy(r).float(), mask=torch.from_numpy(m),
                          centroid=(float(yy.mean()), float(xx.mean())))
