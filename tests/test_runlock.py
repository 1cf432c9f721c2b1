"""sinsemi.runlock: one writer per run dir, across processes; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sinsemi.errors import InputError
from sinsemi.runlock import LOCK_NAME, run_lock

HOLD = """
import sys, time
from sinsemi.runlock import run_lock
with run_lock(sys.argv[1], job="holder"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(run_dir: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_refused_naming_the_holder(tmp_path):
    proc = _holder(tmp_path, 30)
    try:
        with pytest.raises(InputError) as e:
            with run_lock(tmp_path):
                pass
        msg = str(e.value)
        assert f"run dir {tmp_path} is in use by PID {proc.pid} on host {socket.gethostname()}" in msg
        assert "\n" not in msg
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == proc.pid and info["job"] == "holder"
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    proc = _holder(tmp_path, 30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / LOCK_NAME).exists()  # the stale file stays; its flock is gone with the process
    with run_lock(tmp_path, job="next") as path:
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["job"] == "next"
    assert not (tmp_path / LOCK_NAME).exists()


def test_released_on_exit_and_reentrant_in_one_process(tmp_path):
    with run_lock(tmp_path):
        with run_lock(tmp_path):  # the same process: no self-refusal
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()
    proc = _holder(tmp_path, 0)  # another process takes it at once after release
    assert proc.wait(timeout=60) == 0


def test_released_after_an_error_in_the_body(tmp_path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path):
            raise RuntimeError("boom")
    with run_lock(tmp_path):
        pass


def test_contenders_never_hold_it_together(tmp_path):
    """Many processes racing for the lock (some releasing and removing the file meanwhile): at any
    moment at most one is inside."""
    code = """
import os, sys, time
from sinsemi.errors import InputError
from sinsemi.runlock import run_lock
d = sys.argv[1]
wins = 0
end = time.time() + 2
while time.time() < end:
    try:
        with run_lock(d):
            marker = os.path.join(d, "inside")
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if another is inside
            time.sleep(0.001)
            os.close(fd); os.unlink(marker)
            wins += 1
    except InputError:
        pass
print(wins)
"""
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert sum(int(o[0]) for o in outs) > 0
