"""Evaluation jobs: ``sinsemi-eval`` (:func:`eval_run`) and the evaluation of freshly written samples
inside a train/sample job (:func:`evaluate_into`), both through :func:`evaluate_samples`.

:func:`eval_run` turns the composed ``eval.yaml`` into :class:`sinsemi.evaluation.EvalConfig` and
calls :func:`sinsemi.evaluation.evaluate`, which writes into ``out_dir``: ``metrics.json`` (merged
into an existing one, e.g. a training run's), ``row.md`` / ``row.csv``, ``defects.json``,
``heatmap.png`` and ``eval_grid.png``. ``mode=reference`` gives the two-reference row.
:func:`evaluate_into` reads the evaluation settings from the job's own config (the ``eval`` group
of the train and sample roots) with the job's flags.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.evaluation import EvalConfig
from sinsemi.evaluation.keys import REFERENCE_ROW, SUMMARY as SUMMARY_KEYS  # the one registry of metric keys
from sinsemi.jobs.config import to_plain

log = logging.getLogger("sinsemi.eval")

#: the top-level keys of conf/eval.yaml: EvalConfig's fields (``profile`` is read from ``profile_name``,
#: ``device`` from ``trainer.accelerator``), the CLI's own and the logger's (``logger``, ``tags``, ``experiment_name``)
KNOWN_KEYS = tuple(sorted({f.name for f in dataclasses.fields(EvalConfig)} - {"profile", "device"}
                          | {"profile_name", "samples_dir", "n", "trainer", "n_samples", "logger", "tags", "experiment_name",
                             "skip_finished"}))


def eval_config(cfg: Mapping) -> EvalConfig:
    """The library's config from the composed ``eval.yaml``."""
    from sinsemi.validation import resolve_device

    return EvalConfig.from_dict(to_plain(cfg), device=resolve_device(str(cfg["trainer"]["accelerator"]))[0])


def evaluate_samples(samples, refs, ecfg: EvalConfig, *, names: list[str] | None = None, name: str = "samples",
                     logger=None):
    """:func:`sinsemi.evaluation.evaluate` of ``samples`` (N, C, H, W) against ``refs`` (the loaded
    :class:`~sinsemi.evaluation.References`), reported to ``logger`` when given (summary, figures,
    per-sample table, the U-Net's epochs)."""
    from sinsemi.evaluation import evaluate
    from sinsemi.tracking.report import epoch_hook, report_evaluation

    result = evaluate(samples, refs, ecfg, names=names, name=name, on_epoch=epoch_hook(logger))
    report_evaluation(logger, result, samples, ecfg.out_dir, names)
    return result


def eval_run(cfg: Mapping) -> dict:
    """Run the evaluation the composed config asks for; returns the merged ``metrics.json`` dict.
    Every setting is checked before a file is read or written (:func:`sinsemi.validation.validate_eval`).
    With a logger: summary metrics, figures, the per-sample table, the U-Net's epochs and (by
    default) the evaluated run's model and samples bundle as artifacts."""
    from sinsemi.evaluation import load_references, resolve_samples
    from sinsemi.tracking.loggers import artifacts_wanted, check_logger_settings, finish_logger, make_logger, row_tag
    from sinsemi.tracking.report import log_artifacts
    from sinsemi.validation import validate_eval

    cfg = to_plain(cfg)
    validate_eval(cfg, KNOWN_KEYS)
    check_logger_settings(cfg)
    ecfg = eval_config(cfg)
    refs = load_references(ecfg.reference)
    s, samples, names, name = None, None, None, REFERENCE_ROW
    if ecfg.mode == "samples":
        s = resolve_samples(cfg["samples_dir"], cfg["n"])
        samples, names, name = s.images, s.names, s.name
        if ecfg.out_dir is None:
            if s.run_dir is None:
                raise InputError("out_dir= is required when samples_dir is not a run dir")
            ecfg = ecfg.replace(out_dir=s.run_dir)
    elif ecfg.out_dir is None:
        raise InputError("out_dir= is required when samples_dir is not a run dir")
    label = str(ecfg.name or name)
    if cfg.get("skip_finished"):
        from sinsemi import runs

        done = runs.read_metrics(ecfg.out_dir)
        if runs.is_finished(done, evaluate=True, segmentation=ecfg.segmentation,
                            seg_settings=ecfg.seg_settings() if ecfg.segmentation else None):
            log.info("%s is finished (metrics.json with these U-Net settings): skipping", ecfg.out_dir / "metrics.json")
            return done
    from sinsemi.data.io import remove_partials
    from sinsemi.runlock import run_lock

    with run_lock(ecfg.out_dir, job="sinsemi-eval"):  # one writer per out_dir
        remove_partials(ecfg.out_dir, recursive=False)  # a killed eval's temp files (not checkpoints/: a train job's)
        # the label names the run (a re-sampled folder's whole settings name), the generator tags it
        logger = make_logger(cfg, ecfg.out_dir, job_type="eval", label=label, tags=(row_tag(cfg, label),))
        try:
            result = evaluate_samples(samples, refs, ecfg, names=names, name=name, logger=logger)
            if s is not None and artifacts_wanted(cfg, evaluates=True):
                log_artifacts(logger, **_evaluated_files(cfg["samples_dir"], s.run_dir))
        finally:
            finish_logger(logger)
    return result.metrics


def _evaluated_files(samples_dir: str, run_dir: Path | None) -> dict:
    """The model dir and samples bundle + grid behind ``samples_dir`` (a run dir, a bundle, or a
    dir of images with or without a bundle), for :func:`~sinsemi.tracking.report.log_artifacts`."""
    if run_dir is not None:
        return {"model_dir": run_dir / "model", "bundle": run_dir / "samples" / "samples.npz", "grid": run_dir / "grid.png"}
    path = Path(samples_dir)
    folder = path.parent if path.is_file() else path
    return {"bundle": path if path.is_file() else path / "samples.npz", "grid": folder / "grid.png"}


#: the evaluation settings in a train/sample job's config (the ``eval`` group), named as in sinsemi-eval's root
EVAL_KEYS = ("probe", "reference", "labeller", "metrics", "test_set", "downstream", "profile_name")


def job_eval_config(job: Mapping, out_dir: Path | None = None) -> EvalConfig:
    """The evaluation settings of a train/sample job, from its own config (the train and sample roots
    include the ``eval`` group, so every setting can be overridden on the job's command line), with its
    name (its ``row``: the generator's name unless a named recipe set another) and flags, writing
    into ``out_dir``. The segmentation seed stays
    sinsemi-eval's default (0): the job's ``seed`` is its training seed."""
    from sinsemi.validation import resolve_device

    job = to_plain(job)
    base = EvalConfig.from_dict({k: job[k] for k in EVAL_KEYS if k in job},
                                device=resolve_device(str(job["trainer"]["accelerator"]))[0])
    return base.replace(out_dir=None if out_dir is None else Path(out_dir), name=str(job.get("row") or job["generator"]["name"]),
                        segmentation=bool(job.get("segmentation")), allow_random_backbone=bool(job.get("allow_random_backbone")))


def job_seg_settings(job: Mapping) -> dict | None:
    """The U-Net settings a train/sample job's figures must have been made with (None without the U-Net):
    what :func:`sinsemi.runs.is_finished` compares with a run's recorded ``seg_settings``."""
    if not (job.get("evaluate") and job.get("segmentation")):
        return None
    return job_eval_config(job).seg_settings()


def evaluate_into(job: Mapping, samples, out_dir: Path, *, samples_dir: Path | None = None, logger=None) -> dict:
    """Metrics of ``samples`` (N, C, H, W; None: the bundle in ``samples_dir``, default
    ``out_dir/samples``) by the job's evaluation settings, merged into ``out_dir/metrics.json``;
    reported to ``logger`` when given."""
    from sinsemi.data.io import load_samples
    from sinsemi.evaluation import load_references

    samples_dir = samples_dir or (Path(out_dir) / "samples")
    ecfg = job_eval_config(job, out_dir)
    if samples is None:
        samples, _ = load_samples(samples_dir)
    names = [f"{i:05d}.png" for i in range(samples.shape[0])]
    return evaluate_samples(samples.float(), load_references(ecfg.reference), ecfg, names=names, logger=logger).metrics
