"""A row's ratios to the two-reference row and its bootstrap intervals (the ``*_ci_low`` / ``*_ci_high`` keys).

For the samples' per-sample values v_i (SIFID, LPIPS, defect count, nearest-copy distance) and the
two-reference row's SIFID_ref / LPIPS_ref (the clean reference scored against the defect one):

    sifid_ratio = mean_i SIFID_i / SIFID_ref,        lpips_ratio = mean_i LPIPS_i / LPIPS_ref

and 95 % bootstrap intervals (:mod:`sinsemi.evaluation.intervals`) of mean SIFID, mean LPIPS, both
ratios (the reference value fixed), mean defects per image, the same-place rate (images resampled)
and the median copy distance.
"""

from __future__ import annotations

import torch

from sinsemi.evaluation.config import IntervalConfig


def chance_rate(masks: torch.Tensor, places, radius: float) -> float | None:
    """The same-place rate of the true defects of a test set's masks (N, H, W): where defects of
    the training image's type land at random places (the chance level of ``same_place_rate``)."""
    from sinsemi.evaluation.copying import mask_centroids, same_place_rate

    return same_place_rate([mask_centroids(m) for m in masks], places, radius)


def confidence(result, icfg: IntervalConfig) -> dict:
    """Ratio and interval keys of an :class:`~sinsemi.evaluation.result.EvalResult` (its image
    metrics with the two-reference row's figures, its defect and copy metrics filled)."""
    from sinsemi.evaluation.intervals import ci_keys, mean_ci, median_ci, rate_ci

    kw = {"n_resamples": int(icfg.n_resamples), "seed": int(icfg.seed), "level": float(icfg.level)}
    im, cp = result.image, result.copying
    out = {}
    for k in ("sifid", "lpips"):
        per, ref = getattr(im, f"{k}_per_image"), float(getattr(im, f"reference_{k}"))
        out.update(ci_keys(k, mean_ci(per, **kw)))
        ratio_ok = ref > 0
        out[f"{k}_ratio"] = float(getattr(im, f"{k}_mean")) / ref if ratio_ok else None
        out.update(ci_keys(f"{k}_ratio", mean_ci(per, scale=ref, **kw) if ratio_ok else None))
        out[f"{k}_reference"] = ref
    out.update(ci_keys("defect_count", mean_ci(result.labels.counts.double().tolist(), **kw)))
    if cp is not None:
        out.update(ci_keys("same_place_rate", rate_ci(cp.near, cp.detections, **kw) if sum(cp.detections) else None))
        out.update(ci_keys("copy_distance_median", median_ci(cp.distance, **kw) if cp.distance else None))
    out["ci_level"], out["ci_resamples"] = float(icfg.level), int(icfg.n_resamples)
    return out
