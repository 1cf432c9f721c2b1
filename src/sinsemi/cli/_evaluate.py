"""Evaluate freshly written samples inside a train/sample job (experiment and ablation sweeps).

Composes ``conf/eval.yaml`` with the job's profile, references and flags and runs
:func:`sinsemi.cli.eval.evaluate` on the samples bundle the job just wrote.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose
from omegaconf import DictConfig


def evaluate_into(cfg: DictConfig, samples: torch.Tensor, out_dir: Path, *, samples_dir: Path | None = None,
                  logger=None) -> dict:
    """Metrics of the samples in ``samples_dir`` (default ``out_dir/samples``), merged into ``out_dir``."""
    from sinsemi.cli.eval import evaluate

    samples_dir = samples_dir or (out_dir / "samples")
    overrides = [f"samples_dir={samples_dir}", f"out_dir={out_dir}", f"profile={cfg.get('profile_name') or 'quick'}",
                 f"segmentation={str(bool(cfg.get('segmentation'))).lower()}",
                 f"allow_random_backbone={str(bool(cfg.get('allow_random_backbone'))).lower()}",
                 f"name={cfg.generator.name}"]
    ref = cfg.get("reference") or {}
    for key in ("defect", "clean", "mask"):
        if ref.get(key):
            overrides.append(f"reference.{key}={ref[key]}")
    metrics = evaluate(compose("eval", overrides=overrides))
    if logger is not None:
        import wandb

        row = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        logger.experiment.log({"metrics": wandb.Table(columns=list(row), data=[list(row.values())])})
        if (out_dir / "heatmap.png").exists():
            logger.log_image("defects/heatmap", [str(out_dir / "heatmap.png")])
    return metrics
