"""A tiny two-point sweep through ``launcher=slurm`` against a real single-node SLURM cluster.

The fixture installs (apt) and starts munged/slurmctld/slurmd as root and stops them by PID
afterwards; it skips with a clear reason where that is impossible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests._cli import run_cli, write_tiny_png

SCRIPT = Path(__file__).parent / "slurm" / "local_slurm.sh"
pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a local SLURM needs root (slurmd runs as root here)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is absent")
    if subprocess.run(["bash", str(SCRIPT), "install"], capture_output=True).returncode != 0:
        pytest.skip("could not apt-get install slurm-wlm munge")
    d = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(["bash", str(SCRIPT), "start", str(d)], capture_output=True, text=True, timeout=120)
    try:
        if start.returncode != 0:
            pytest.fail(f"local SLURM did not start: {start.stderr}")
        yield d / "slurm.conf"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(d)], capture_output=True, timeout=60)


@pytest.mark.slow  # the submit-and-return test below runs the same two jobs through sbatch by default
def test_two_point_sweep_through_slurm(slurm_cluster, tmp_path, tiny_image):
    png = write_tiny_png(tmp_path / "tiny.png", tiny_image)
    sweep = tmp_path / "sweep"
    run_cli("train", "-m", "generator=gpdm,gpnn", "profile=tiny", "logger=none", f"data.image={png}",
            "launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.partition=debug",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${generator.name}",
            env={"SLURM_CONF": str(slurm_cluster)}, timeout=900)
    for name in ("gpdm", "gpnn"):
        m = json.loads((sweep / name / "metrics.json").read_text())
        assert m["generator"] == name
        assert len(list((sweep / name / "samples").glob("*.png"))) == m["n_samples"]
    # submitit really went through sbatch: its job folders hold SLURM job ids and logs
    logs = list((sweep / ".submitit").rglob("*_log.out"))
    assert logs, "no submitit job logs: jobs did not run through SLURM"


def test_sweep_submits_and_returns_then_status_collects(slurm_cluster, tmp_path, tiny_image):
    """hydra.launcher.wait=false (make ... WAIT=0): the CLI returns once the jobs are queued; the
    collect step (make status) lists them until their metrics.json are written."""
    import time

    from sinsemi.report import status as S

    png = write_tiny_png(tmp_path / "tiny.png", tiny_image)
    sweep = tmp_path / "sweep"
    out = run_cli("train", "-m", "generator=gpdm,gpnn", "profile=tiny", "logger=none", f"data.image={png}",
                  "launcher=slurm", "hydra.launcher.wait=false", "hydra.launcher.gpus_per_node=0",
                  "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                  "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${generator.name}",
                  env={"SLURM_CONF": str(slurm_cluster)}, timeout=300)
    assert "not waiting" in out.stdout + out.stderr
    first = S.sweep_status(sweep)
    assert len(first.runs) == 2 and not first.finished, "the CLI waited for the jobs"
    deadline = time.time() + 600
    while not S.sweep_status(sweep).finished and time.time() < deadline:
        time.sleep(5)
    st = S.sweep_status(sweep)
    assert st.finished, [(r.run_dir.name, r.state) for r in st.runs]
    assert {r.run_dir.name for r in st.runs} == {"gpdm", "gpnn"}
