"""The one registry of evaluation metric keys: what ``metrics.json`` holds, how tables label and
format it, which direction is better, which keys mark an evaluation done.

Readers: :mod:`sinsemi.runs` (a run is finished when its :data:`REQUIRED_EVAL` / :data:`REQUIRED_SEG`
keys are there), :mod:`sinsemi.report.tables` (columns, labels, formats), the eval job's summary line
and the W&B summary (:data:`SUMMARY`). A new metric is one :class:`MetricKey` here plus the code that
computes it. Plain data: no torch, importable from anywhere.

Kinds (how a cell is formatted from ``metrics.json``; ``key`` is the stem):

* ``pm``: ``<key>_mean ± <key>_std``;
* ``ci``: ``<key>_mean`` (or ``<key>``) with its bootstrap 95 % interval ``[<key>_ci_low, <key>_ci_high]``;
* ``seeds``: ``<key>_mean ± <key>_seed_std`` (the std over the U-Net's training seeds);
* ``num`` / ``int`` / ``list`` / ``str`` / ``flag`` / ``weights``: the value of ``key`` itself;
* ``min``: seconds shown as minutes.

Every table starts with the :data:`COMMON` columns (sample count, fit and sampling time).
"""

from __future__ import annotations

from dataclasses import dataclass

#: the name of the row whose "samples" are the two references themselves (every ratio's denominator)
REFERENCE_ROW = "two references"


@dataclass(frozen=True)
class MetricKey:
    """One column: ``key`` (the metrics.json key or stem), ``label`` (table header), ``kind`` (see the
    module doc), ``better`` ("lower" | "higher" | None: no direction), ``table`` it belongs to."""

    key: str
    label: str
    kind: str
    better: str | None = None
    table: str = ""

    def value_key(self) -> str:
        """The metrics.json key of the column's central value."""
        return f"{self.key}_mean" if self.kind in ("pm", "seeds") or self.key in _MEAN_STEMS else self.key


_MEAN_STEMS = {"sifid", "lpips", "defect_count"}  # ci columns whose central value is <key>_mean

TABLE_TITLES = {
    "table1": "Table 1: average defect count per generated image (labeller), and where the defects are",
    "table2": "Table 2: SIFID (fidelity, vs the defect reference), LPIPS (vs the defect reference), copying",
    "table3": "Table 3: downstream U-Net IoU (new-places test set: the training defect's type at new places; "
              "paper-style set; unseen types: random bridges/opens; external set when run)",
}

#: the first columns of every table: what a row's figures rest on and what they cost (fit: the
#: training job's, summed over its attempts; CPU: every thread's, the compute a busy machine does not inflate)
COMMON: tuple[MetricKey, ...] = (
    MetricKey("n_samples", "N", "int"),
    MetricKey("fit_seconds", "fit (min)", "min"),
    MetricKey("fit_cpu_seconds", "fit (CPU min)", "min"),
    MetricKey("sample_seconds", "sampling (min)", "min"),
)

KEYS: tuple[MetricKey, ...] = (
    # Table 1
    MetricKey("defect_count", "defects / image [95% CI]", "ci", None, "table1"),
    MetricKey("defect_count_interior_mean", "interior / image", "num", None, "table1"),
    MetricKey("defect_count_border_mean", "border band / image", "num", None, "table1"),
    MetricKey("defect_count_hist", "count histogram 0,1,2,…", "list", None, "table1"),
    MetricKey("same_place_rate", "same place as the training defect [95% CI]", "ci", "lower", "table1"),
    MetricKey("labeller_probe_recall", "labeller recall (inserted defect)", "num", "higher", "table1"),
    # Table 2
    MetricKey("sifid", "SIFID ↓ [95% CI]", "ci", "lower", "table2"),
    MetricKey("lpips", "LPIPS [95% CI]", "ci", None, "table2"),
    MetricKey("sifid_ratio", "SIFID / two-ref [95% CI]", "ci", "lower", "table2"),
    MetricKey("lpips_ratio", "LPIPS / two-ref [95% CI]", "ci", None, "table2"),
    MetricKey("pairwise_lpips", "pairwise LPIPS", "pm", "higher", "table2"),
    MetricKey("pixel_diversity", "pixel diversity", "num", "higher", "table2"),
    MetricKey("flat_fraction", "flat samples", "num", "lower", "table2"),
    MetricKey("copy_distance_median", "copy distance median [95% CI]", "ci", "higher", "table2"),
    MetricKey("copy_distance_p10", "copy distance p10", "num", "higher", "table2"),
    MetricKey("weights", "weights", "weights", None, "table2"),
    # Table 3
    MetricKey("iou_new_places", "IoU new places (± seeds)", "seeds", "higher", "table3"),
    MetricKey("iou_new_places_iou_defect", "IoU defect images (new places)", "num", "higher", "table3"),
    MetricKey("iou_new_places_recall", "recall (new places)", "num", "higher", "table3"),
    MetricKey("iou_new_places_false_per_clean", "false / clean image (new places)", "num", "lower", "table3"),
    MetricKey("iou", "IoU (paper set, ± images)", "pm", "higher", "table3"),
    MetricKey("iou_iou_defect", "IoU defect images (paper set)", "num", "higher", "table3"),
    MetricKey("iou_recall", "detection recall (paper set)", "num", "higher", "table3"),
    MetricKey("iou_false_per_clean", "false / clean image (paper set)", "num", "lower", "table3"),
    MetricKey("iou_random", "IoU unseen types (± seeds)", "seeds", "higher", "table3"),
    MetricKey("iou_random_iou_defect", "IoU defect images (unseen types)", "num", "higher", "table3"),
    MetricKey("iou_random_recall", "recall (unseen types)", "num", "higher", "table3"),
    MetricKey("iou_random_false_per_clean", "false / clean image (unseen types)", "num", "lower", "table3"),
    MetricKey("iou_external", "IoU (external, ± seeds)", "seeds", "higher", "table3"),
    MetricKey("seg_train_set", "trained on", "str", None, "table3"),
    MetricKey("seg_mask", "mask convention", "str", None, "table3"),
    MetricKey("seg_seeds", "U-Net seeds", "list", None, "table3"),
    MetricKey("unet_collapsed", "collapsed U-Nets", "int", "lower", "table3"),
    MetricKey("seg_empty_flag", "flag", "flag", None, "table3"),
)

BY_KEY = {k.key: k for k in KEYS + COMMON}

#: an evaluation is done when these are in metrics.json (with the U-Net: also REQUIRED_SEG)
REQUIRED_EVAL = ("sifid_mean", "lpips_mean", "defect_count_mean")
REQUIRED_SEG = ("seg_train_set",)
#: a row belongs to a table when its metrics.json holds one of these keys
TABLE_MARKER = {"table1": ("defect_count_mean",), "table2": ("sifid_mean",), "table3": ("seg_train_set", "iou_mean")}
#: the eval job's one-line summary and the first columns of the W&B runs table
SUMMARY = ("sifid_mean", "lpips_mean", "sifid_ratio", "lpips_ratio", "defect_count_mean", "same_place_rate",
           "copy_distance_median", "iou_new_places_mean", "iou_mean", "unet_collapsed")
#: keys of a downstream run (dropped from a merged metrics.json when an evaluation skips the U-Net)
DOWNSTREAM_PREFIXES = ("iou", "seg_", "unet_")


def columns(table: str) -> list[MetricKey]:
    """The columns of ``table`` (table1 | table2 | table3), in order: :data:`COMMON`, then the table's own."""
    return list(COMMON) + [k for k in KEYS if k.table == table]
