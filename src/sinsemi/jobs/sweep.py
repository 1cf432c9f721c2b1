"""The outcome records of a multirun's points: ``<sweep dir>/.jobs/<job num>.json``, written by each
job (in whichever process it runs), read back for the one-line summary of the failed points."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sinsemi.errors import InputError

log = logging.getLogger("sinsemi")

JOBS_DIR = ".jobs"  # <sweep dir>/.jobs/<job num>.json: each point's outcome (read back for the summary)
_SWEEP: dict[str, Any] = {"dir": None, "t0": time.time()}


def last_sweep_dir() -> str | None:
    """The sweep dir of the last multirun this process recorded (or reset) an outcome in."""
    return _SWEEP["dir"]


def record_outcome(sweep_dir, num: int, overrides: list[str], status: str, error: str | None = None, *,
                   input_error: bool = False) -> None:
    """Write one point's outcome (``done`` / ``failed`` and its error) into the sweep dir."""
    from sinsemi.data.io import save_json

    _SWEEP["dir"] = str(sweep_dir)
    rec = {"num": int(num), "overrides": list(overrides), "status": status, "error": error, "input_error": input_error}
    try:
        save_json(rec, Path(sweep_dir) / JOBS_DIR / f"{int(num):05d}.json")
    except (OSError, InputError) as e:  # the record helps the summary; it must not hide the job's own error
        log.warning("could not record the outcome of sweep point %s: %s", num, e)


def sweep_summary(sweep_dir: str | os.PathLike | None) -> tuple[str | None, bool]:
    """One line naming the failed points of the last multirun in ``sweep_dir`` (None when none
    failed), and whether every failure was bad input."""
    if not sweep_dir or not (Path(sweep_dir) / JOBS_DIR).is_dir():
        return None, False
    recs = []
    for p in sorted((Path(sweep_dir) / JOBS_DIR).glob("*.json")):
        try:
            if p.stat().st_mtime < _SWEEP["t0"] - 1:  # an earlier multirun's (no SweepReport callback cleared it)
                continue
            recs.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    failed = [r for r in recs if r.get("status") == "failed"]
    if not failed:
        return None, False
    # name a point by what varies across the sweep (all its overrides when nothing does)
    common = set.intersection(*(set(r["overrides"]) for r in recs)) if len(recs) > 1 else set()
    names = [" ".join(o for o in r["overrides"] if o not in common) or " ".join(r["overrides"]) for r in failed]
    line = (f"error: {len(failed)} of {len(recs)} sweep points failed: "
            + "; ".join(f"[{n}] {r['error']}" for n, r in zip(names, failed)))
    return line, all(r.get("input_error") for r in failed)


def reset_sweep_records(sweep_dir: str | os.PathLike) -> None:
    """Forget the outcomes of an earlier multirun into the same sweep dir (called at multirun start)."""
    _SWEEP["dir"] = str(sweep_dir)
    shutil.rmtree(Path(sweep_dir) / JOBS_DIR, ignore_errors=True)


def read_records(sweep_dir: str | os.PathLike) -> dict[int, dict]:
    """Every point's outcome record in ``sweep_dir``, by job number (unreadable ones left out)."""
    out = {}
    for p in (Path(sweep_dir) / JOBS_DIR).glob("*.json"):
        try:
            rec = json.loads(p.read_text())
            out[int(rec["num"])] = rec
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out
