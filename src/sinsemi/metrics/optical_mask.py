"""The paper's defect labelling ("optical" masks): where the blurred defect image differs from the
blurred defect-free image by more than 5 gray levels.

Rule of the published segmentation code: Gaussian blur 5 x 5, sigma 1, of both images; pixels with
``|blur(defect) - blur(clean)| > threshold`` (5 gray levels = 5/255 in our [0, 1] scale); 8-connected
components larger than ``min_area`` px (100) with circularity above ``min_circularity`` (0.6) are
the mask. It needs the two images pixel-aligned (true for the references and their augmentations);
generated images use the labeller's aligned residual region instead (see sinsemi.evaluation.masks).
numpy/scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

MASKS = ("footprint", "optical")


@dataclass(frozen=True)
class OpticalRule:
    threshold: float = 5.0 / 255.0
    sigma: float = 1.0
    kernel: int = 5              # blur support (px): truncate the Gaussian at (kernel // 2) px, as a 5 x 5 kernel
    min_area: int = 100
    min_circularity: float = 0.6


def _gray(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    return a.mean(axis=0) if a.ndim == 3 else a


def blur5(a: np.ndarray, rule: OpticalRule = OpticalRule()) -> np.ndarray:
    """The 5 x 5, sigma 1 Gaussian blur (mirror edges, as OpenCV's default border)."""
    return ndimage.gaussian_filter(a, rule.sigma, truncate=(rule.kernel // 2) / rule.sigma, mode="mirror")


def keep_components(candidate: np.ndarray, rule: OpticalRule = OpticalRule()) -> np.ndarray:
    """The 8-connected components of ``candidate`` (H, W) bool larger than ``min_area`` and rounder
    than ``min_circularity``."""
    from sinsemi.metrics.labeller import circularity

    labels, n = ndimage.label(candidate, structure=np.ones((3, 3), dtype=bool))
    out = np.zeros_like(candidate, dtype=bool)
    for i in range(1, n + 1):
        comp = labels == i
        if comp.sum() > rule.min_area and circularity(comp) > rule.min_circularity:
            out |= comp
    return out


def optical_mask(defect: torch.Tensor, clean: torch.Tensor, rule: OpticalRule = OpticalRule()) -> torch.Tensor:
    """The paper's mask (H, W) bool of ``defect`` (C, H, W) against its aligned defect-free ``clean``."""
    diff = np.abs(blur5(_gray(defect), rule) - blur5(_gray(clean), rule))
    return torch.from_numpy(keep_components(diff > rule.threshold, rule))


def optical_mask_of_residual(residual: torch.Tensor | np.ndarray, rule: OpticalRule = OpticalRule()) -> torch.Tensor:
    """The same rule on a known (noise-free) defect residual (H, W): blur, threshold, components."""
    return torch.from_numpy(keep_components(np.abs(blur5(_gray(residual), rule)) > rule.threshold, rule))
