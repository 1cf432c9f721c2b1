"""One writer per run dir: an advisory lock held by a train, sample or eval job for its whole life.

The lock is ``fcntl.flock`` on ``<dir>/.lock``, which records the holder's PID, host and job. The
kernel releases a flock when its process dies (kill -9 included), so the lock of a dead job is free
to take: no stale-lock guessing. A second job on the same dir gets one :class:`InputError` naming
the holder. Locks are advisory and local to what the file system shares: on NFS, flock works only
where the client supports it (Linux >= 2.6.12 emulates it with POSIX locks).

Within one process the lock is re-entrant (a job that calls another job's code on the same dir
holds it once), since two flocks of one process on two descriptors would refuse each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sinsemi.errors import InputError

LOCK_NAME = ".lock"
_HELD: dict[str, list] = {}  # resolved lock path -> [fd, depth] of the locks this process holds


def _holder(path: Path) -> str:
    """'PID p on host h (job j since t)' from the lock file, as far as it can be read."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (its PID is not recorded yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"])) if isinstance(info.get("started"), (int, float)) else "?"
    return f"PID {info['pid']} on host {info.get('host', '?')} ({info.get('job', 'a job')} since {since})"


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path`` (the file that is at ``path`` now), or None when
    another process holds it. Retries when the file was unlinked by its releasing holder between our
    open and our flock (we would hold a lock on a file nobody else sees)."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # a released and removed lock file: lock the one at path now


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, *, job: str = "a job") -> Iterator[Path]:
    """Hold ``<directory>/.lock`` while the body runs (the directory is created if missing).

    Raises :class:`InputError` ("run dir D is in use by PID p on host h (...)") when another process
    holds it. On exit the lock file is removed and the lock released (and the directory, when this
    call created it and it is still empty); after a crash the kernel frees
    it and the next job takes it over (the stale file's contents are overwritten)."""
    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create run dir {directory}: {e.strerror or e}") from None
    path = directory.resolve() / LOCK_NAME
    key = str(path)
    if key in _HELD:  # re-entrant within this process
        _HELD[key][1] += 1
        try:
            yield path
        finally:
            _HELD[key][1] -= 1
        return
    try:
        fd = _try_lock(path)
    except OSError as e:
        raise InputError(f"cannot lock run dir {directory} ({path}): {e.strerror or e}") from None
    if fd is None:
        raise InputError(f"run dir {directory} is in use by {_holder(path)}: wait for that job to end, or use "
                         "another run dir (a dead job's lock is taken over automatically)")
    info = {"pid": os.getpid(), "host": socket.gethostname(), "job": job, "started": time.time(),
            "argv": sys.argv[1:]}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except OSError:
        pass  # the lock holds without its note; a refused job then names no PID
    _HELD[key] = [fd, 1]
    try:
        yield path
    finally:
        del _HELD[key]
        # unlink while still locked: a job that opened the old file sees the inode change and retries
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        if created:  # a job that wrote nothing leaves no empty dir behind
            with contextlib.suppress(OSError):
                directory.rmdir()
