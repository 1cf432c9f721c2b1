"""Hydra callbacks (named by ``_target_`` in the configs)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sinsemi.jobs.slurm import check_slurm


class SlurmPreflight(Callback):
    """Fail before anything is submitted when SLURM is not reachable (``sinfo`` must answer)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_slurm()


class SweepReport(Callback):
    """Start each multirun with no outcome records from an earlier one in the same sweep dir (the
    jobs write theirs, in whichever process they run; :func:`sinsemi.cli._common.cli_main` sums them up)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from sinsemi.jobs.sweep import reset_sweep_records

        reset_sweep_records(config.hydra.sweep.dir)
