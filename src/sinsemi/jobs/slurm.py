"""Whether SLURM is usable here (``launcher=slurm``): checked before anything is submitted."""

from __future__ import annotations

import shutil
import subprocess

from sinsemi.errors import InputError


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
