"""``sinsemi-eval``: score the samples of any generator against the two references.

Parses ``conf/eval.yaml`` into :class:`sinsemi.evaluation.EvalConfig` and calls
:func:`sinsemi.evaluation.evaluate`, which writes into ``out_dir``: ``metrics.json`` (merged into an
existing one, e.g. a training run's), ``row.md`` / ``row.csv``, ``defects.json``, ``heatmap.png`` and
``eval_grid.png``. ``mode=reference`` gives the two-reference row (see ``conf/eval.yaml``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sinsemi.cli._common import cli_main, conf_dir, task, to_primitive
from sinsemi.errors import InputError
from sinsemi.evaluation import EvalConfig, evaluate as run_evaluation, load_references, resolve_samples
from sinsemi.validation import resolve_device, validate_eval

SUMMARY_KEYS = ("sifid_mean", "lpips_mean", "defect_count_mean", "iou_mean")
#: the top-level keys of conf/eval.yaml: EvalConfig's fields (``profile`` is read from ``profile_name``,
#: ``device`` from ``trainer.accelerator``), the CLI's own and the logger's (``logger``, ``tags``, ``experiment_name``)
KNOWN_KEYS = tuple(sorted({f.name for f in dataclasses.fields(EvalConfig)} - {"profile", "device"}
                          | {"profile_name", "samples_dir", "n", "trainer", "n_samples", "logger", "tags", "experiment_name"}))


def eval_config(cfg: DictConfig) -> EvalConfig:
    """The library's config from the composed ``eval.yaml``."""
    return EvalConfig.from_dict(to_primitive(cfg), device=resolve_device(str(cfg.trainer.accelerator))[0])


def evaluate(cfg: DictConfig) -> dict:
    """Run the evaluation the composed config asks for; returns the merged ``metrics.json`` dict.
    Every setting is checked before a file is read or written (:func:`sinsemi.validation.validate_eval`).
    With a logger: summary metrics, figures, the per-sample table, the U-Net's epochs and (by
    default) the evaluated run's model and samples bundle as artifacts."""
    from sinsemi.cli.loggers import artifacts_wanted, check_logger_settings, finish_logger, make_logger
    from sinsemi.cli.wandb_report import epoch_hook, log_artifacts, report_evaluation

    validate_eval(to_primitive(cfg), KNOWN_KEYS)
    check_logger_settings(cfg)
    ecfg = eval_config(cfg)
    refs = load_references(ecfg.reference)
    s, samples, names, name = None, None, None, "two references"
    if ecfg.mode == "samples":
        s = resolve_samples(cfg.samples_dir, cfg.n)
        samples, names, name = s.images, s.names, s.name
        if ecfg.out_dir is None:
            if s.run_dir is None:
                raise InputError("out_dir= is required when samples_dir is not a run dir")
            ecfg = ecfg.replace(out_dir=s.run_dir)
    elif ecfg.out_dir is None:
        raise InputError("out_dir= is required when samples_dir is not a run dir")
    label = str(ecfg.name or name)
    # --- harden hook (issue 25): one writer per out_dir; the temp files of a killed eval are removed
    from sinsemi.data.io import remove_partials
    from sinsemi.runlock import run_lock

    with run_lock(ecfg.out_dir, job="sinsemi-eval"):
        remove_partials(ecfg.out_dir, recursive=False)  # not checkpoints/: a train job's
        logger = make_logger(cfg, ecfg.out_dir, job_type="eval", label=label, tags=(label,))
        try:
            result = run_evaluation(samples, refs, ecfg, names=names, name=name, on_epoch=epoch_hook(logger))
            report_evaluation(logger, result, samples, ecfg.out_dir, names)
            if s is not None and artifacts_wanted(cfg, evaluates=True):
                log_artifacts(logger, **_evaluated_files(cfg.samples_dir, s.run_dir))
        finally:
            finish_logger(logger)
    # --- end harden hook
    return result.metrics


def _evaluated_files(samples_dir: str, run_dir: Path | None) -> dict:
    """The model dir and samples bundle + grid behind ``samples_dir`` (a run dir, a bundle, or a
    dir of images with or without a bundle), for :func:`~sinsemi.cli.wandb_report.log_artifacts`."""
    if run_dir is not None:
        return {"model_dir": run_dir / "model", "bundle": run_dir / "samples" / "samples.npz", "grid": run_dir / "grid.png"}
    path = Path(samples_dir)
    folder = path.parent if path.is_file() else path
    return {"bundle": path if path.is_file() else path / "samples.npz", "grid": folder / "grid.png"}


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="eval")
@task
def _main(cfg: DictConfig) -> None:
    m = evaluate(cfg)
    print(json.dumps({k: m[k] for k in SUMMARY_KEYS if k in m}))


def main() -> None:
    cli_main(_main)


if __name__ == "__main__":
    main()
