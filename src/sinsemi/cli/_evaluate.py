"""Evaluate freshly written samples inside a train/sample job (experiment and ablation sweeps).

Composes ``conf/eval.yaml`` with the job's profile (for its labeller, test-set and U-Net settings),
turns it into the library's :class:`~sinsemi.evaluation.EvalConfig` with the job's references and
flags, and calls :func:`sinsemi.evaluation.evaluate` on the samples in memory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose
from omegaconf import DictConfig


def evaluate_into(cfg: DictConfig, samples: torch.Tensor, out_dir: Path, *, samples_dir: Path | None = None,
                  logger=None) -> dict:
    """Metrics of ``samples`` (N, C, H, W; the bundle in ``samples_dir``, default ``out_dir/samples``),
    merged into ``out_dir/metrics.json``; reported to ``logger`` (summary, figures, per-sample table,
    the U-Net's epochs) when given."""
    from sinsemi.cli.eval import eval_config
    from sinsemi.cli.wandb_report import epoch_hook, report_evaluation
    from sinsemi.data.io import load_samples
    from sinsemi.evaluation import ReferenceSpec, evaluate, load_references

    samples_dir = samples_dir or (out_dir / "samples")
    base = eval_config(compose("eval", overrides=[f"profile={cfg.get('profile_name') or 'quick'}"]))
    ref = cfg.get("reference") or {}
    ecfg = base.replace(out_dir=Path(out_dir), name=str(cfg.generator.name), segmentation=bool(cfg.get("segmentation")),
                        allow_random_backbone=bool(cfg.get("allow_random_backbone")),
                        reference=ReferenceSpec(**{**vars(base.reference), **{k: ref[k] for k in ("defect", "clean", "mask") if ref.get(k)}}))
    if samples is None:
        samples, _ = load_samples(samples_dir)
    names = [f"{i:05d}.png" for i in range(samples.shape[0])]
    result = evaluate(samples.float(), load_references(ecfg.reference), ecfg, names=names, on_epoch=epoch_hook(logger))
    report_evaluation(logger, result, samples, out_dir, names)
    return result.metrics
