"""Run the project's console scripts in a subprocess (the real entry points)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

BIN = Path(sys.executable).parent


def run_cli(name: str, *args: str, check: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``sinsemi-<name> args...``; returns the completed process (stdout+stderr captured)."""
    e = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    proc = subprocess.run([str(BIN / f"sinsemi-{name}"), *args], capture_output=True, text=True, timeout=timeout, env=e)
    if check and proc.returncode != 0:
        raise AssertionError(f"sinsemi-{name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def write_tiny_png(path: Path, image: torch.Tensor) -> Path:
    from sinsemi.data.io import save_png

    return save_png(image, path)
