"""What an evaluation returns (:class:`EvalResult`) and how it merges into a run's ``metrics.json``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.evaluation.copying import CopyMetrics
from sinsemi.evaluation.defects import DefectMetrics
from sinsemi.metrics.segmentation import DownstreamMetrics
from sinsemi.evaluation.image_metrics import ImageMetrics
from sinsemi.metrics.labeller import LabellerConfig, LabelResult


@dataclass
class EvalResult:
    """One evaluation: the row's identity, image/defect/downstream metrics, the labeller used and
    its per-image result (``labels``, not serialised); :meth:`to_dict` is the flat metrics.json form."""

    name: str
    mode: str
    n_samples: int
    reference: str
    profile: str | None
    reference_mask: str                  # "given" (file or simulator) | "labeller"
    image: ImageMetrics
    defects: DefectMetrics
    labeller: LabellerConfig
    labels: LabelResult
    downstream: DownstreamMetrics | None = None
    labeller_reference_counts: list[int] | None = None  # mode=reference: counts on (defect, clean)
    probe: dict | None = None            # the labeller on the samples with the reference's defect inserted
    copying: CopyMetrics | None = None   # same-place rate, nearest-copy distances
    confidence: dict | None = None       # ratios to the two-reference row, bootstrap intervals (flat keys)
    eval_seconds: float = 0.0
    metrics: dict | None = None          # to_dict() merged over the out_dir's previous metrics.json

    def to_dict(self) -> dict:
        out = {"name": self.name, "mode": self.mode, "n_samples": self.n_samples, "reference": self.reference,
               "profile": self.profile, "reference_mask": self.reference_mask}
        out.update(self.image.to_dict())
        out.update(self.defects.to_dict())
        if self.labeller_reference_counts is not None:
            out["labeller_reference_counts"] = self.labeller_reference_counts
        if self.probe is not None:
            out.update({f"labeller_probe_{k}": v for k, v in self.probe.items()})
        if self.copying is not None:
            out.update(self.copying.to_dict())
        if self.confidence is not None:
            out.update(self.confidence)
        out["labeller"] = dataclasses.asdict(self.labeller)
        if self.downstream is not None:
            out.update(self.downstream.to_dict())
        out["eval_seconds"] = round(self.eval_seconds, 2)
        return out

    def per_sample(self) -> list[dict]:
        """One row per evaluated sample (mode=samples; [] for mode=reference, which scores one clean
        image): its index, defect count (border / interior split as in :class:`DefectMetrics`),
        SIFID and LPIPS against the defect reference, detections at the training defect's place
        and the nearest-copy distance."""
        from sinsemi.evaluation.probe import border_split

        if self.mode != "samples":
            return []
        size = tuple(self.labels.masks.shape[-2:])
        rows = []
        for i in range(self.n_samples):
            border, interior = border_split([self.labels.centroids[i]], size, self.defects.border)
            row = {"index": i, "defects": int(self.labels.counts[i]), "defects_border": border,
                   "defects_interior": interior, "sifid": float(self.image.sifid_per_image[i]),
                   "lpips": float(self.image.lpips_per_image[i])}
            if self.copying is not None:
                row.update({"same_place": int(self.copying.near[i]), "copy_distance": float(self.copying.distance[i])})
            rows.append(row)
        return rows


def merge_metrics(path: Path, new: dict, drop_prefixes: tuple[str, ...] = ()) -> dict:
    """``new`` over the existing metrics.json at ``path``; keys of a previous downstream run
    (``drop_prefixes``) are dropped when this evaluation skipped it (no stale IoU beside new SIFID)."""
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"existing {path} is not valid JSON ({e}); move it away to evaluate here") from None
        if isinstance(old, dict):
            old = {k: v for k, v in old.items() if not k.startswith(drop_prefixes)} if drop_prefixes else old
            return {**old, **new}
    return new
