"""What a job reports to its logger so runs can be compared: W&B summary columns, a per-sample
table, the model and samples as artifacts, the U-Net's epochs, the evaluation's figures.

Only W&B has a summary, tables and artifacts; for the CSV / TensorBoard loggers those calls do
nothing and the epoch curves go through ``log_metrics``. Reporting runs after the job's work and
before its ``metrics.json`` (a rerun after a kill reports again, into the same W&B run); a failure
to report is a warning, never a failed job.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sinsemi")

SCALARS = (bool, int, float, str)


def _run(logger):
    """The W&B run behind ``logger``, or None for any other logger (or none)."""
    from lightning.pytorch.loggers import WandbLogger

    return logger.experiment if isinstance(logger, WandbLogger) else None


@contextlib.contextmanager
def reporting(what: str):
    """Run a report step; an error in it is logged as a warning (the job's results are on disk)."""
    try:
        yield
    except Exception as e:  # the logger is a view of the results, never a reason to lose them
        log.warning("could not report %s to the logger: %s: %s", what, type(e).__name__, e)


def summary_row(metrics: dict) -> dict:
    """The scalar entries of a metrics.json dict (numbers, flags, names): the runs table's columns."""
    return {k: v for k, v in metrics.items() if isinstance(v, SCALARS) and v is not None}


def report_metrics(logger, metrics: dict) -> None:
    """``metrics`` (metrics.json form) into the W&B run summary: sortable, plottable columns."""
    run = _run(logger)
    if run is not None:
        with reporting("the summary metrics"):
            run.summary.update(summary_row(metrics))


def epoch_hook(logger, prefix: str = "seg") -> Callable[[dict], None] | None:
    """A callback for the U-Net's epoch records (:func:`sinsemi.metrics.segmentation.train_unet`):
    ``<prefix>/train_loss`` ... against ``<prefix>/epoch`` (W&B: its own x axis, the fit's
    ``trainer/global_step`` untouched; other loggers: step = epoch). None without a logger."""
    if logger is None:
        return None
    run = _run(logger)
    if run is not None:
        run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/epoch")

    def on_epoch(rec: dict) -> None:
        values = {f"{prefix}/{k}": v for k, v in rec.items() if isinstance(v, (int, float))}
        with reporting("a U-Net epoch"):
            if run is not None:
                run.log(values)
            else:
                logger.log_metrics(values, step=int(rec["epoch"]))

    return on_epoch


def log_images(logger, images: dict[str, Path]) -> None:
    """PNG files as logged images, by key (loggers without images, e.g. CSV: nothing); missing files are skipped."""
    if logger is None or not hasattr(logger, "log_image"):
        return
    with reporting("images"):
        for key, png in images.items():
            if Path(png).exists():
                logger.log_image(key, [str(png)])


def log_sample_table(logger, result, samples: torch.Tensor | None, names: list[str] | None = None) -> None:
    """A ``wandb.Table`` ``eval/samples`` with one row per sample of an evaluation result: name,
    image (samples (N, C, H, W), contrast-stretched), defect count (border / interior), SIFID, LPIPS."""
    run = _run(logger)
    rows = result.per_sample()
    if run is None or not rows or samples is None:
        return
    import wandb

    from sinsemi.data.io import display_range, to_uint8

    with reporting("the per-sample table"):
        value_range = display_range(samples)
        cols = ["name", "image", *[k for k in rows[0] if k != "index"]]
        table = wandb.Table(columns=cols)
        for r in rows:
            i = r["index"]
            label = names[i] if names and i < len(names) else f"{i:05d}"
            table.add_data(label, wandb.Image(to_uint8(samples[i], value_range)), *[r[k] for k in cols[2:]])
        run.log({"eval/samples": table})


def log_artifacts(logger, *, model_dir: Path | None = None, bundle: Path | None = None, grid: Path | None = None) -> None:
    """The model dir (type ``model``) and the samples bundle + grid (type ``samples``) as W&B
    artifacts named ``<type>-<run id>`` (a rerun of the same content adds no version)."""
    run = _run(logger)
    if run is None:
        return
    import wandb

    with reporting("the artifacts"):
        if model_dir is not None and Path(model_dir).is_dir():
            art = wandb.Artifact(f"model-{run.id}", type="model", metadata={"dir": str(model_dir)})
            art.add_dir(str(model_dir))
            run.log_artifact(art)
        if bundle is not None and Path(bundle).is_file():
            art = wandb.Artifact(f"samples-{run.id}", type="samples", metadata={"bundle": str(bundle)})
            art.add_file(str(bundle))
            if grid is not None and Path(grid).is_file():
                art.add_file(str(grid), name="grid.png")
            run.log_artifact(art)


def report_evaluation(logger, result, samples: torch.Tensor | None, out_dir: Path, names: list[str] | None = None) -> None:
    """Everything an evaluation shows on the logger: summary metrics, figures, per-sample table."""
    if logger is None:
        return
    report_metrics(logger, result.metrics or result.to_dict())
    log_images(logger, {"defects/heatmap": Path(out_dir) / "heatmap.png", "defects/eval_grid": Path(out_dir) / "eval_grid.png"})
    log_sample_table(logger, result, samples, names)
