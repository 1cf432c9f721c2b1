"""Masks by convention for the downstream task (``downstream.mask``).

``footprint``: the defect reference's exact/given mask and the labeller's line-shaped footprints.
``optical``: the paper's labelling: the reference's |blur(defect) - blur(clean)| > 5 gray-level
region (components > 100 px, circularity > 0.6); for generated images, which are not pixel-aligned
with the clean reference, the labeller's aligned residual region under the same rule.
"""

from __future__ import annotations

import dataclasses

import torch

from sinsemi.evaluation.references import References
from sinsemi.metrics.labeller import LabellerConfig, LabelResult, label_defects
from sinsemi.metrics.optical_mask import OpticalRule, optical_mask


def reference_mask(refs: References, convention: str) -> torch.Tensor:
    """The defect reference's mask (H, W) bool under ``convention``."""
    if convention == "optical":
        return optical_mask(refs.defect, refs.clean)
    return refs.mask.bool()


def optical_labeller(lcfg: LabellerConfig, rule: OpticalRule = OpticalRule()) -> LabellerConfig:
    """The labeller set to return the paper's region (whole components of |residual| > 5 gray levels)."""
    return dataclasses.replace(lcfg, threshold=rule.threshold, blur_sigma=rule.sigma, min_area=rule.min_area,
                               min_circularity=rule.min_circularity, mask_rel=0.0, mask_shape="region")


def training_masks(samples: torch.Tensor, refs: References, lcfg: LabellerConfig, labels: LabelResult,
                   convention: str) -> torch.Tensor:
    """Masks (N, H, W) of generated samples (N, C, H, W) under ``convention`` (``labels``: the counting labeller's)."""
    if convention == "optical":
        return label_defects(samples, refs.clean, optical_labeller(lcfg)).masks
    return labels.masks


def baseline_train_set(refs: References, scfg, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmentation baseline's training set (``scfg``: :class:`~sinsemi.metrics.segmentation.SegConfig`):
    ``n_baseline`` noisy flips of the two references, the defect reference's mask by the
    ``downstream.mask`` convention."""
    from sinsemi.metrics.segmentation import augment_references

    return augment_references(refs.defect, refs.clean, reference_mask(refs, scfg.mask), int(scfg.n_baseline), seed=seed,
                              noise_max=float(scfg.baseline_noise_max))
