"""Hydra callbacks."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sinsemi.errors import InputError


class SlurmPreflight(Callback):
    """Fail before anything is submitted when SLURM is not reachable (``sinfo`` must answer)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_slurm()


class SweepReport(Callback):
    """Start each multirun with no outcome records from an earlier one in the same sweep dir (the
    jobs write theirs, in whichever process they run; :func:`sinsemi.cli._common.cli_main` sums them up)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from sinsemi.cli._common import reset_sweep_records

        reset_sweep_records(config.hydra.sweep.dir)


def check_slurm(timeout: float = 15.0) -> str:
    """``sinfo``'s partition summary, or one clear InputError saying why SLURM is unusable."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        raise InputError("launcher=slurm but SLURM is not installed here (no sinfo/sbatch on PATH); use launcher=local or submitit_local")
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %a %D %T"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InputError(f"launcher=slurm but the SLURM controller did not answer within {timeout:.0f} s (sinfo timed out)") from None
    if out.returncode != 0 or not out.stdout.strip():
        msg = (out.stderr or out.stdout).strip().splitlines()
        raise InputError(f"launcher=slurm but SLURM is not reachable: {msg[-1] if msg else 'sinfo returned nothing'}")
    return out.stdout
