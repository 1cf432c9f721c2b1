"""The files an evaluation writes into its out dir."""

from __future__ import annotations

from pathlib import Path

import torch

from sinsemi.evaluation.keys import DOWNSTREAM_PREFIXES
from sinsemi.evaluation.result import EvalResult, merge_metrics


def write_defects(images: torch.Tensor, names: list[str], result: EvalResult, out_dir: Path) -> None:
    """``defects.json`` (per-image counts, centroids, areas) and ``heatmap.png``."""
    from sinsemi.data.io import save_json
    from sinsemi.report.heatmap import save_heatmap

    res, cp = result.labels, result.copying
    out = {"names": names, "counts": res.counts.tolist(), "centroids": res.centroids, "areas": res.areas,
           "image_size": list(images.shape[-2:]), "orientation": res.orientation}
    if cp is not None:
        # per image: detections within the radius of the training defect; per evaluated sample: nearest-copy distance
        out.update({"training_defect_places": [list(p) for p in cp.places], "same_place_radius_px": cp.radius,
                    "same_place": cp.near, "copy_distance": cp.distance,
                    "copy_distance_names": names if len(cp.distance) == len(names) else ["reference_clean"]})
    save_json(out, out_dir / "defects.json")
    save_heatmap(res.counts.tolist(), res.centroids, tuple(images.shape[-2:]), out_dir / "heatmap.png", title=result.name,
                 marks=cp.places if cp is not None else (), mark_radius=cp.radius if cp is not None else 0.0)


def write_grid(images: torch.Tensor, result: EvalResult, value_range: tuple[float, float], out_dir: Path) -> None:
    """``eval_grid.png``: the first 64 labelled images (N, C, H, W), contrast-stretched to
    ``value_range``, detections outlined, the count in each tile's corner."""
    from sinsemi.report.eval_grid import save_eval_grid

    n = min(64, images.shape[0])
    res = result.labels
    title = (f"{result.name}: {result.defects.count_mean:.2f} defects/image over {images.shape[0]} "
             f"(red: detections; yellow dashes: {result.labeller.border}-px border band)")
    names = ["defect reference", "clean reference"] if result.mode == "reference" else None
    save_eval_grid(images[:n], res.masks[:n], res.counts[:n].tolist(), out_dir / "eval_grid.png", value_range=value_range,
                   border=result.labeller.border, title=title, names=names)


def write_metrics(result: EvalResult, out_dir: Path, *, segmentation: bool) -> dict:
    """Merge the result into ``out_dir/metrics.json`` and write the run's table row; returns the merged dict."""
    from sinsemi.data.io import save_json
    from sinsemi.report.tables import write_row

    merged = merge_metrics(out_dir / "metrics.json", result.to_dict(), drop_prefixes=() if segmentation else DOWNSTREAM_PREFIXES)
    save_json(merged, out_dir / "metrics.json")
    write_row(merged, out_dir)
    return merged
