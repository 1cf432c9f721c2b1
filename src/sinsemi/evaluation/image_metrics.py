"""Fidelity and diversity of the samples: SIFID and LPIPS against the defect reference, pairwise LPIPS."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sinsemi.evaluation.config import EvalConfig


@dataclass
class ImageMetrics:
    """Means/stds over the samples; ``weights`` names the pretrained weights used; the pairwise
    figures are None for a single sample. ``sifid_per_image`` / ``lpips_per_image``: one value per
    sample (N,), for per-sample tables (not in :meth:`to_dict`, so not in metrics.json)."""

    sifid_mean: float
    sifid_std: float
    lpips_mean: float
    lpips_std: float
    weights: dict
    random_backbone: bool
    pairwise_lpips_mean: float | None = None
    pairwise_lpips_std: float | None = None
    pairwise_lpips_exhaustive: bool | None = None
    pixel_diversity: float | None = None
    flat_fraction: float | None = None  # share of flat samples (a collapsed generator: 1)
    sifid_per_image: list[float] = field(default_factory=list, repr=False)
    lpips_per_image: list[float] = field(default_factory=list, repr=False)
    reference_sifid: float | None = None  # the two-reference row's figures (clean vs defect reference): the ratios' denominators
    reference_lpips: float | None = None

    def to_dict(self) -> dict:
        out = {"sifid_mean": self.sifid_mean, "sifid_std": self.sifid_std, "lpips_mean": self.lpips_mean,
               "lpips_std": self.lpips_std, "weights": self.weights, "random_backbone": self.random_backbone,
               "flat_fraction": self.flat_fraction}
        if self.pairwise_lpips_mean is not None:
            out.update({"pairwise_lpips_mean": self.pairwise_lpips_mean, "pairwise_lpips_std": self.pairwise_lpips_std,
                        "pairwise_lpips_exhaustive": self.pairwise_lpips_exhaustive, "pixel_diversity": self.pixel_diversity})
        return out


def image_metrics(samples: torch.Tensor, defect_reference: torch.Tensor, cfg: EvalConfig,
                  clean_reference: torch.Tensor | None = None) -> ImageMetrics:
    """Samples (N, C, H, W) against the defect reference (C, H, W); with ``clean_reference`` (C, H, W)
    also the two-reference row's SIFID and LPIPS (the same models: the ratios' denominators)."""
    from sinsemi.metrics.lpips import flat_fraction, lpips_to_reference, pairwise_lpips, pixel_diversity
    from sinsemi.metrics.sifid import sifid
    from sinsemi.metrics.weights import inception_model, lpips_model

    allow, bs = cfg.allow_random_backbone, cfg.metrics.batch_size
    inception = inception_model(allow_random=allow, device=cfg.device)
    lp = lpips_model(cfg.metrics.lpips_net, allow_random=allow, device=cfg.device)
    s = sifid(samples, defect_reference, model=inception, batch_size=bs)
    l2r = lpips_to_reference(samples, defect_reference, model=lp, batch_size=bs)
    out = ImageMetrics(sifid_mean=s.mean, sifid_std=s.std, lpips_mean=l2r.mean, lpips_std=l2r.std,
                       weights={"sifid": s.weights, "lpips": l2r.weights},
                       random_backbone=bool(getattr(inception, "random_backbone", False) or getattr(lp, "random_backbone", False)),
                       sifid_per_image=s.per_image.tolist(), lpips_per_image=l2r.per_image.tolist(),
                       flat_fraction=flat_fraction(samples, defect_reference))
    if clean_reference is not None:
        out.reference_sifid = sifid(clean_reference[None], defect_reference, model=inception, batch_size=bs).mean
        out.reference_lpips = lpips_to_reference(clean_reference[None], defect_reference, model=lp, batch_size=bs).mean
    if samples.shape[0] >= 2:
        pw = pairwise_lpips(samples, model=lp, max_pairs=cfg.metrics.pairwise_max_pairs, batch_size=bs)
        out.pairwise_lpips_mean, out.pairwise_lpips_std, out.pairwise_lpips_exhaustive = pw.mean, pw.std, pw.exhaustive
        out.pixel_diversity = float(pixel_diversity(samples, defect_reference))
    return out
