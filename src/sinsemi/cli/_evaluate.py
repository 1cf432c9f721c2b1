"""Evaluate freshly written samples inside a train/sample job (experiment and ablation sweeps).

Reads the evaluation settings from the job's own config (the train and sample roots include the
``eval`` group, conf/eval/default.yaml, with the profile's U-Net: every setting can be overridden on the
job's command line, as with ``sinsemi-eval``), turns them into the library's
:class:`~sinsemi.evaluation.EvalConfig` with the job's flags, and calls
:func:`sinsemi.evaluation.evaluate` on the samples in memory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

#: the evaluation settings in a train/sample job's config, named as in sinsemi-eval's root
EVAL_KEYS = ("probe", "reference", "labeller", "metrics", "test_set", "downstream", "profile_name")


def eval_settings(cfg: DictConfig, out_dir: Path | None = None):
    """The :class:`~sinsemi.evaluation.EvalConfig` of a train/sample job, from its own config. The
    segmentation seed stays sinsemi-eval's default (0): the job's ``seed`` is its training seed."""
    from sinsemi.cli._common import to_primitive
    from sinsemi.evaluation import EvalConfig
    from sinsemi.validation import resolve_device

    plain = to_primitive(cfg)
    base = EvalConfig.from_dict({k: plain[k] for k in EVAL_KEYS if k in plain},
                                device=resolve_device(str(cfg.trainer.accelerator))[0])
    return base.replace(out_dir=None if out_dir is None else Path(out_dir), name=str(cfg.generator.name),
                        segmentation=bool(cfg.get("segmentation")), allow_random_backbone=bool(cfg.get("allow_random_backbone")))


def evaluate_into(cfg: DictConfig, samples: torch.Tensor, out_dir: Path, *, samples_dir: Path | None = None,
                  logger=None) -> dict:
    """Metrics of ``samples`` (N, C, H, W; the bundle in ``samples_dir``, default ``out_dir/samples``),
    merged into ``out_dir/metrics.json``; reported to ``logger`` (summary, figures, per-sample table,
    the U-Net's epochs) when given."""
    from sinsemi.cli.wandb_report import epoch_hook, report_evaluation
    from sinsemi.data.io import load_samples
    from sinsemi.evaluation import evaluate, load_references

    samples_dir = samples_dir or (out_dir / "samples")
    ecfg = eval_settings(cfg, out_dir)
    if samples is None:
        samples, _ = load_samples(samples_dir)
    names = [f"{i:05d}.png" for i in range(samples.shape[0])]
    result = evaluate(samples.float(), load_references(ecfg.reference), ecfg, names=names, on_epoch=epoch_hook(logger))
    report_evaluation(logger, result, samples, out_dir, names)
    return result.metrics
