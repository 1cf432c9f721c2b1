"""Sweeps: a tiny multirun through the local and submitit_local launchers, skip-finished on rerun,
kill-and-resume, and the sweep-level bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests._cli import BIN, run_cli, write_tiny_png

TINY = ["generator=gpnn", "profile=tiny", "logger=none"]


@pytest.fixture
def tiny_png(tmp_path, tiny_image):
    return write_tiny_png(tmp_path / "tiny.png", tiny_image)


def _runs(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}


def test_local_multirun_and_skip(tmp_path, tiny_png):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, f"data.image={tiny_png}", "seed=0,1", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=seed${seed}"]
    run_cli("train", *args)
    runs = _runs(sweep)
    assert set(runs) == {"seed0", "seed1"}
    for name, m in runs.items():
        assert m["generator"] == "gpnn" and m["n_samples"] == 4
        assert len(list((sweep / name / "samples").glob("*.png"))) == 4
        assert (sweep / name / "grid.png").exists()
    mtimes = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    out = run_cli("train", *args)
    assert "skipping" in out.stdout + out.stderr
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")} == mtimes


@pytest.mark.slow  # ~14 s; the launcher's path through submitit is also the SLURM test's
def test_submitit_local_multirun(tmp_path, tiny_png):
    sweep = tmp_path / "sweep"
    run_cli("train", "-m", *TINY, "launcher=submitit_local", "hydra.launcher.cpus_per_task=1", f"data.image={tiny_png}",
            "seed=0,1", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=seed${seed}")
    assert set(_runs(sweep)) == {"seed0", "seed1"}


def test_killed_sweep_completes_only_missing_jobs(tmp_path, tiny_png):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, f"data.image={tiny_png}", "seed=0,1,2", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=seed${seed}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(BIN / "sinsemi-train"), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = sweep / "seed0" / "metrics.json"
    t0 = time.time()
    while not first.exists() and time.time() - t0 < 300 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kill mid-way: after job 0, before the sweep ends
    proc.wait()
    assert first.exists(), "first job never finished"
    killed_done = set(_runs(sweep))
    assert killed_done != {"seed0", "seed1", "seed2"}, "sweep finished before it could be killed"
    before = {p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    run_cli("train", *args)
    after = {p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    assert set(after) == {"seed0", "seed1", "seed2"}
    for name, mtime in before.items():  # finished jobs were not redone
        assert after[name] == mtime


def test_sweep_dir_of_another_experiment_is_refused(tmp_path, tiny_png):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "experiment.json").write_text(json.dumps({"experiment": "ablate_steps", "profile": "quick"}))
    proc = run_cli("train", "-m", *TINY, f"data.image={tiny_png}", "experiment_name=compare", "seed=0",
                   f"hydra.sweep.dir={sweep}", check=False)
    assert proc.returncode != 0
    assert "holds runs of experiment 'ablate_steps'" in proc.stderr
    assert not list(sweep.glob("*/metrics.json"))


def test_unknown_generator_is_one_clear_error(tmp_path):
    proc = run_cli("train", "generator=nope", "logger=none", f"hydra.run.dir={tmp_path}/r", check=False)
    assert proc.returncode != 0
    assert "generator/nope" in proc.stderr and "Available options" in proc.stderr


def test_unknown_ablation_is_one_clear_error(tmp_path):
    proc = run_cli("sample", "ablation=nope", f"run_dir={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "not a training run dir" in proc.stderr or "ablation/nope" in proc.stderr


@pytest.mark.slow  # ~15 s (sbatch's own timeout); `make test-slow`
def test_slurm_unreachable_fails_before_submitting(tmp_path, tiny_png):
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "SLURM_CONF": str(tmp_path / "missing.conf")}
    proc = run_cli("train", "-m", *TINY, f"data.image={tiny_png}", "launcher=slurm", "seed=0,1",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", check=False, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: launcher=slurm but")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweep").exists()


def test_one_bad_point_does_not_stop_the_sweep(tmp_path, tiny_png):
    sweep = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = run_cli("train", "-m", *TINY, f"data.image={tiny_png}", "seed=-1,0", f"hydra.sweep.dir={sweep}",
                   "hydra.sweep.subdir=seed${seed}", check=False, env=env)
    assert set(_runs(sweep)) == {"seed0"}  # the point after the bad one ran
    assert proc.returncode == 2, proc.stderr[-3000:]
    summary = proc.stderr.strip().splitlines()[-1]
    assert summary.startswith("error: 1 of 2 sweep points failed: [seed=-1] seed must be an integer >= 0, got -1"), summary
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_fixed_sweep_reports_no_stale_failure(tmp_path, tiny_png):
    sweep = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = run_cli("train", "-m", *TINY, f"data.image={tiny_png}", "seed=0,-1", f"hydra.sweep.dir={sweep}",
                   "hydra.sweep.subdir=seed${seed}", check=False, env=env)
    assert proc.returncode == 2
    # a rerun with the point fixed completes the sweep and reports nothing
    proc = run_cli("train", "-m", *TINY, f"data.image={tiny_png}", "seed=0,2", f"hydra.sweep.dir={sweep}",
                   "hydra.sweep.subdir=seed${seed}", check=False, env=env)
    assert proc.returncode == 0 and "sweep points failed" not in proc.stderr
    assert set(_runs(sweep)) == {"seed0", "seed2"}


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_make_table_args_reach_the_side_jobs_without_the_sweep_selection(launcher):
    """`make table3 ARGS="generator=a,b callbacks=keep_all ..."`: the energy re-sampling and the two-reference
    jobs get the other overrides but not generator= / callbacks= (which sinsemi-sample / -eval refuse)."""
    repo = Path(__file__).resolve().parents[1]
    args = "ARGS=generator=sinsemi,gpdm callbacks=keep_all sampler.steps=3 hydra.launcher.partition=p"
    out = {}
    for target in ("energy", "reference"):
        res = subprocess.run(["make", "-n", "--no-print-directory", target, "PROFILE=standard", f"LAUNCHER={launcher}", args],
                             cwd=repo, capture_output=True, text=True, check=True)
        out[target] = [ln for ln in res.stdout.splitlines() if "sinsemi-sample" in ln or "sinsemi-eval" in ln]
    sample_lines = out["energy"]
    assert sample_lines and all("sampler.steps=3" in ln and "generator=" not in ln and "callbacks=" not in ln
                                for ln in sample_lines)
    ref = [ln for ln in out["reference"] if "-m mode=reference" in ln]
    assert ref and "hydra.launcher.partition=p" in ref[0] and "generator=" not in ref[0]


def test_make_tables_on_a_reference_pair():
    """`make table3 IMAGE=A CLEAN=B`: every job trains on A / is evaluated against (A, B), in sweep and
    reference dirs of their own (a table of another pair is never mixed in); one of the two alone is refused."""
    repo = Path(__file__).resolve().parents[1]
    pair = ["IMAGE=pairs/a_defect.png", "CLEAN=pairs/a_clean.png"]

    def dry(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=repo, capture_output=True, text=True)

    res = dry("table3", "PROFILE=standard", *pair)
    assert res.returncode == 0, res.stderr
    train = next(ln for ln in res.stdout.splitlines() if "sinsemi-train experiment=table3" in ln)
    assert "data.image=pairs/a_defect.png" in train and "reference.clean=pairs/a_clean.png" in train
    assert "hydra.sweep.dir=outputs/compare_standard_a_defect" in train
    ref = next(ln for ln in res.stdout.splitlines() if "sinsemi-eval mode=reference" in ln)
    assert "out_dir=outputs/reference_standard_a_defect" in ref and "reference.defect=pairs/a_defect.png" in ref
    energy = dry("energy", "PROFILE=standard", *pair).stdout
    assert "ls -d outputs/compare_standard_a_defect/sinsemi_seed*" in energy and "reference.clean=pairs/a_clean.png" in energy
    status = dry("status", "PROFILE=standard", *pair).stdout
    assert "--runs outputs/compare_standard_a_defect outputs/reference_standard_a_defect --out experiments/results/standard" in status
    alone = dry("table1", "IMAGE=pairs/a_defect.png")
    assert alone.returncode != 0 and "give both IMAGE= and CLEAN=" in alone.stderr


def test_make_demo_unet_evaluates_both_rows_alike():
    """`make demo-unet MASK=footprint PROFILE=standard`: the demo's samples and the augmentation baseline are
    evaluated with the same profile, mask convention and test sets, into one folder per (profile, mask),
    and every override is a key of the eval config."""
    from sinsemi.jobs.config import compose, initialized

    repo = Path(__file__).resolve().parents[1]
    res = subprocess.run(["make", "-n", "--no-print-directory", "demo-unet", "MASK=footprint", "PROFILE=standard"],
                         cwd=repo, capture_output=True, text=True, check=True)
    evals = [ln.split("sinsemi-eval", 1)[1].split() for ln in res.stdout.splitlines() if "bin/sinsemi-eval" in ln]
    assert len(evals) == 2
    ref, demo = evals
    assert "mode=reference" in ref and "samples_dir=outputs/demo" in demo
    shared = {"profile=standard", "downstream.mask=footprint", "test_set.random.n=0"}
    assert shared <= set(ref) and shared <= set(demo)
    assert "out_dir=outputs/demo_unet_standard_footprint/two_references" in ref
    assert "out_dir=outputs/demo_unet_standard_footprint/demo" in demo
    with initialized():
        for overrides in evals:
            cfg = compose("eval", overrides=overrides)
            assert cfg.downstream.mask == "footprint" and cfg.test_set.random.n == 0
    tables = next(ln for ln in res.stdout.splitlines() if "sinsemi.report.tables" in ln)
    assert "--out outputs/demo_unet_standard_footprint" in tables


def test_make_demo_unet_with_n_samples_trains_both_unets_on_n_images():
    """`make demo-unet N=1000`: N samples drawn from the demo's model, and both rows' U-Nets trained on N images."""
    repo = Path(__file__).resolve().parents[1]
    res = subprocess.run(["make", "-n", "--no-print-directory", "demo-unet", "N=1000"], cwd=repo, capture_output=True,
                         text=True, check=True)
    lines = res.stdout.splitlines()
    sample = next(ln for ln in lines if "bin/sinsemi-sample" in ln)
    assert "run_dir=outputs/demo" in sample and "n=1000" in sample
    drawn = next(a for a in sample.split() if a.startswith("out_dir=")).removeprefix("out_dir=")
    evals = [ln for ln in lines if "bin/sinsemi-eval" in ln]
    assert len(evals) == 2 and all("downstream.n_train=1000" in ln and "downstream.n_baseline=1000" in ln for ln in evals)
    assert f"samples_dir={drawn}" in evals[1] and "out_dir=outputs/demo_unet_quick_optical_n1000/" in evals[1]
