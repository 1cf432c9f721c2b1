"""Defect metrics: the labeller on every sample, its contrast calibrated on the defect reference."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch

from sinsemi.evaluation.references import References
from sinsemi.metrics.labeller import LabelResult, LabellerConfig, calibrate_contrast, label_defects

log = logging.getLogger("sinsemi.eval")


@dataclass
class DefectMetrics:
    """Defects per image (mean, population std), the histogram of per-image counts (0, 1, 2, ...),
    and the mean counts per image of detections within ``border`` px of an edge and inside it."""

    count_mean: float
    count_std: float
    hist: list[int]
    border_mean: float
    interior_mean: float
    border: int

    def to_dict(self) -> dict:
        return {"defect_count_mean": self.count_mean, "defect_count_std": self.count_std, "defect_count_hist": self.hist,
                "defect_count_interior_mean": self.interior_mean, "defect_count_border_mean": self.border_mean,
                "defect_border_px": self.border}


def labeller_config(refs: References, lcfg: LabellerConfig) -> LabellerConfig:
    """``lcfg`` with ``contrast`` (None) calibrated on the defect reference when its mask is known
    (given or simulated), since sub-resolution defects only show their mass, not their length."""
    if lcfg.contrast is None and refs.mask is not None and lcfg.mask_shape == "lines":
        c = calibrate_contrast(refs.defect, refs.clean, refs.mask, lcfg)
        if c is not None:
            lcfg = dataclasses.replace(lcfg, contrast=c)
    return lcfg


def fill_reference_mask(refs: References, lcfg: LabellerConfig) -> None:
    """User references without a mask: the labeller's mask of the defect reference (in place)."""
    if refs.mask is not None:
        return
    lab = label_defects(refs.defect[None], refs.clean, lcfg)
    refs.mask = lab.masks[0]
    if int(lab.counts[0]) != 1:
        log.warning("the labeller finds %d defects in the defect reference (expected 1)", int(lab.counts[0]))


def defect_metrics(images: torch.Tensor, refs: References, lcfg: LabellerConfig) -> tuple[DefectMetrics, LabelResult]:
    """The labeller on images (N, C, H, W) against the clean reference."""
    from sinsemi.evaluation.probe import border_split

    res = label_defects(images, refs.clean, lcfg)
    counts = res.counts.float()
    hist = torch.bincount(res.counts, minlength=4).tolist()
    n = max(1, images.shape[0])
    b, i = border_split(res.centroids, tuple(images.shape[-2:]), lcfg.border)
    return DefectMetrics(float(counts.mean()), float(counts.std(unbiased=False)), hist, b / n, i / n, lcfg.border), res
