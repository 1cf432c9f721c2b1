"""What the CLIs check and set up before a job runs: the command line's output dirs and SLURM (before
Hydra writes anything), and the log files of DDP ranks other than 0."""

from __future__ import annotations

import logging


def preflight(argv: list[str]) -> None:
    """Checks before Hydra starts anything (Hydra creates the output dir before any job code runs):
    the output dirs named on the command line are writable, and SLURM answers when
    ``launcher=slurm`` is asked for."""
    from sinsemi.validation import check_writable_dir

    for a in argv:
        key, sep, value = a.lstrip("+").partition("=")
        if sep and key in ("hydra.run.dir", "hydra.sweep.dir") and value and "$" not in value and "," not in value:
            check_writable_dir(value, key)
    if any(a in ("launcher=slurm", "+launcher=slurm") for a in argv):
        from sinsemi.jobs.slurm import check_slurm

        check_slurm()


def quiet_other_ranks() -> None:
    """On a DDP rank other than 0, drop the root logger's file handlers (SLURM tasks of one job share
    the job's log file; rank 0 writes it). The console stays: a rank's warnings and errors show."""
    from sinsemi.distributed import is_global_zero

    if is_global_zero():
        return
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(h)
        h.close()
