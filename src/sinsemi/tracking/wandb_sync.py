"""Upload every offline W&B run under a directory; a run counts as uploaded only when wandb marked it
(``make wandb-sync DIR=...``: :mod:`sinsemi.cli.wandb_sync`).

An offline run is a ``offline-run-*`` folder holding a ``run-<id>.wandb`` file (jobs write them
under their run dir's ``wandb/``). ``wandb sync`` marks each uploaded file with a
``run-<id>.wandb.synced`` file beside it, and exits 0 even when an upload failed: here a run counts
as uploaded only when that mark exists afterwards. A resumed run (same id, several folders) is
passed in one call, oldest first, so its parts upload in order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sinsemi.errors import InputError

PREFIX = "offline-run-"


@dataclass
class SyncReport:
    """What :func:`sync` found and did: offline run folders, those already uploaded before, those
    uploaded now and those that did not upload."""

    found: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    synced: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    returncode: int | None = None  # wandb sync's (None: not run, or killed at the timeout)


def run_file(run_dir: Path) -> Path | None:
    """The ``run-<id>.wandb`` file of an offline run folder, or None."""
    files = sorted(run_dir.glob("run-*.wandb"))
    return files[0] if files else None


def is_synced(run_dir: Path) -> bool:
    f = run_file(run_dir)
    return f is not None and f.with_name(f.name + ".synced").exists()


def offline_runs(root: str | os.PathLike) -> list[Path]:
    """Every offline run folder under ``root`` (symlinks such as ``latest-run`` not followed),
    oldest first (the folder name starts with its start time)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory: give the directory holding the runs (e.g. DIR=outputs)")
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        for d in list(dirnames):
            p = Path(dirpath) / d
            if d.startswith(PREFIX) and not p.is_symlink() and run_file(p) is not None:
                found.append(p)
                dirnames.remove(d)  # nothing to find inside a run folder
    return sorted(found, key=lambda p: (p.name, str(p)))


def wandb_sync_command(paths: Sequence[Path]) -> list[str]:
    return [sys.executable, "-m", "wandb", "sync", *map(str, paths)]


def sync(roots: Sequence[str | os.PathLike], *, include_synced: bool = False, timeout: float | None = None,
         runner: Callable[[list[str]], int] | None = None) -> SyncReport:
    """Upload the offline runs under ``roots`` with ``wandb sync``. ``runner`` runs the command
    and returns its exit code (default: a subprocess, killed after ``timeout`` s)."""
    from sinsemi.tracking.loggers import wandb_api_key_source

    found = sorted({p for r in roots for p in offline_runs(r)}, key=lambda p: (p.name, str(p)))
    rep = SyncReport(found=found)
    todo = [p for p in found if include_synced or not is_synced(p)]
    rep.skipped = [p for p in found if p not in todo]
    if not todo:
        return rep
    if wandb_api_key_source() is None:
        raise InputError(f"not logged in to W&B (no WANDB_API_KEY, no netrc entry): run `wandb login`, then "
                         f"this again; the {len(todo)} offline runs stay where they are")
    for p in todo:  # a mark left from an earlier upload would count as success
        f = run_file(p)
        if include_synced and f is not None:
            f.with_name(f.name + ".synced").unlink(missing_ok=True)
    run = runner or (lambda cmd: subprocess.run(cmd, timeout=timeout).returncode)
    try:
        rc = run(wandb_sync_command(todo))
    except subprocess.TimeoutExpired:
        rc = None  # the runs not marked by then count as failed
    for p in todo:  # the marks decide, not the exit code (0 after a failed upload)
        (rep.synced if is_synced(p) else rep.failed).append(p)
    rep.returncode = rc
    return rep
