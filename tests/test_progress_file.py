"""Training with stdout and stderr going to files (SLURM, CI, ``make demo > log``): no bar redrawn with
'\\r', a progress line with step, loss and lr in the output and in the run's train.log, Lightning's
INFO lines once."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests._cli import BIN


def _train(tmp_path, *args: str) -> tuple[str, str]:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "out.log", "w") as out, open(tmp_path / "err.log", "w") as err:
        proc = subprocess.run([str(BIN / "sinsemi-train"), "profile=tiny", "logger=none", "trainer.progress=true",
                               f"hydra.run.dir={tmp_path / 'run'}", *args], stdout=out, stderr=err, env=env, timeout=600)
    stdout, stderr = (tmp_path / "out.log").read_text(), (tmp_path / "err.log").read_text()
    assert proc.returncode == 0, stderr[-3000:]
    return stdout, stderr


def test_sinsemi_fit_logged_as_lines(tmp_path):
    stdout, stderr = _train(tmp_path, "+callbacks.progress_bar.every_n=2")
    assert "\r" not in stdout + stderr
    fit_lines = [ln for ln in stdout.splitlines() if "sinsemi fit: " in ln]
    assert all(" loss " in ln and " lr " in ln for ln in fit_lines), fit_lines
    assert any("/6 steps (" in ln for ln in fit_lines), stdout  # step k of 6, then the summary line
    log = (tmp_path / "run" / "train.log").read_text()
    assert "sinsemi fit: 2/6 steps" in log and " loss " in log  # the run's own log carries the loss
    both = stdout + stderr
    assert both.count("`Trainer.fit` stopped") == 1, both  # Lightning's INFO lines once, not twice


# singan and sinddm: make test-slow (the default suite keeps the SinSEMI fit's case and the progress module's own tests)
@pytest.mark.parametrize("generator", [pytest.param("singan", marks=pytest.mark.slow), pytest.param("sinddm", marks=pytest.mark.slow)])
def test_baseline_loops_write_no_bar_into_files(tmp_path, generator):
    stdout, stderr = _train(tmp_path, f"generator={generator}", "n_samples=2")
    assert "\r" not in stdout + stderr
