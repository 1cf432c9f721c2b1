"""Interrupted training runs: SIGTERM / SIGINT / kill -9 mid-fit, SIGTERM / kill -9 inside a
checkpoint write, and a death between the samples and the grid. Each rerun must end with the
weights and samples of an uninterrupted run, every artifact present and no temporary file left;
SIGTERM must exit non-zero with one message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests._cli import BIN, write_tiny_png

# SinSEMI (Lightning) on the tiny profile, long enough to be caught between checkpoints
FIT = ["generator=sinsemi", "profile=tiny", "logger=none", "trainer.max_steps=40", "trainer.checkpoint_every=4"]


def _env() -> dict:
    e = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    e.pop("HYDRA_FULL_ERROR", None)
    return e


# SinGAN (a plain loop, no Lightning): 5 scales x 40 iterations, a checkpoint every 5
GAN = ["generator=singan", "profile=tiny", "logger=none", "generator.niter=40", "trainer.checkpoint_every=5"]


def _train(run_dir: Path, image: Path, *extra: str, args=FIT) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sinsemi-train"), *args, f"data.image={image}", f"hydra.run.dir={run_dir}", *extra],
                          capture_output=True, text=True, timeout=600, env=_env())


def _interrupt_mid_fit(run_dir: Path, image: Path, sig: int, args=FIT, ckpt_name="last.ckpt") -> subprocess.CompletedProcess:
    """Start a training run and send ``sig`` once its first checkpoint exists (mid-fit)."""
    proc = subprocess.Popen([str(BIN / "sinsemi-train"), *args, f"data.image={image}", f"hydra.run.dir={run_dir}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    ckpt = run_dir / "checkpoints" / ckpt_name
    t0 = time.time()
    while not ckpt.exists() and proc.poll() is None and time.time() - t0 < 300:
        time.sleep(0.01)
    assert proc.poll() is None, "the fit ended before it could be interrupted"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _weights(run_dir: Path) -> dict:
    """Every tensor of the saved model, by its path in state.pt."""
    def flat(node, prefix=""):
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, (list, tuple)) else ()
        out = {}
        for k, v in items:
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, (dict, list, tuple)) else
                       {f"{prefix}{k}": v} if isinstance(v, torch.Tensor) else {})
        return out

    return flat(torch.load(run_dir / "model" / "state.pt", map_location="cpu", weights_only=True))


def _samples(run_dir: Path) -> np.ndarray:
    with np.load(run_dir / "samples" / "samples.npz") as z:
        return z["images"]


def _partials(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if ".partial-" in p.name or (p.name.startswith(".") and p.is_file())]


def _assert_same_as(run_dir: Path, ref: Path) -> None:
    for name in ("config.yaml", "fingerprint.json", "grid.png", "metrics.json", "model/state.pt", "samples/samples.npz"):
        assert (run_dir / name).exists(), name
    a, b = _weights(ref), _weights(run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(_samples(ref), _samples(run_dir))
    assert not _partials(run_dir), _partials(run_dir)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(32).float()
    img = (0.5 + 0.2 * torch.cos(2 * torch.pi * x / 10))[None, None, :].expand(1, 32, 32).clone()
    img[:, 14:18, 12:20] = 0.3
    img = (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    return write_tiny_png(tmp_path_factory.mktemp("img") / "tiny.png", img)


def _uninterrupted(tmp_path_factory, image: Path, name: str, args=FIT) -> Path:
    """The run every interrupted-and-rerun one must end equal to."""
    run_dir = tmp_path_factory.mktemp(name) / "run"
    proc = _train(run_dir, image, args=args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def reference(tmp_path_factory, image) -> Path:
    return _uninterrupted(tmp_path_factory, image, "ref")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_fit_checkpoints_exits_non_zero_and_resumes(tmp_path, image, reference, sig):
    run_dir = tmp_path / "run"
    proc = _interrupt_mid_fit(run_dir, image, sig)
    assert proc.returncode == 128 + sig, (proc.returncode, proc.stderr[-3000:])
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: interrupted by {signal.Signals(sig).name}: finished steps are kept; rerun the same command to resume"]
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()
    stopped = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert 4 <= stopped < 40
    part = json.loads((run_dir / "progress.json").read_text())["fit_seconds"]
    assert part > 0
    proc = _train(run_dir, image)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_as(run_dir, reference)
    assert json.loads((run_dir / "metrics.json").read_text())["fit_seconds"] > part  # both parts counted


@pytest.mark.slow
def test_sigterm_mid_gan_fit(tmp_path, image):
    """A generator without Lightning: SIGTERM raises at once, the rerun resumes from the last
    periodic checkpoint and ends where an uninterrupted run ends."""
    ref = tmp_path / "ref"
    assert _train(ref, image, args=GAN).returncode == 0
    run_dir = tmp_path / "run"
    proc = _interrupt_mid_fit(run_dir, image, signal.SIGTERM, args=GAN, ckpt_name="last.pt")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [
        "error: interrupted by SIGTERM: finished steps are kept; rerun the same command to resume"]
    assert _train(run_dir, image, args=GAN).returncode == 0
    _assert_same_as(run_dir, ref)


@pytest.mark.slow
def test_kill_9_mid_fit_resumes_identically(tmp_path, image, reference):
    run_dir = tmp_path / "run"
    proc = _interrupt_mid_fit(run_dir, image, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    proc = _train(run_dir, image)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_as(run_dir, reference)


# ----------------------------------------------------------------------------- kill inside a checkpoint write
PAUSE_S = 3.0  # the test hook's pause inside each checkpoint write (the kill lands in it)
CKPT = {"sinsemi": (FIT, "last.ckpt"), "singan": (GAN, "last.pt")}


@pytest.fixture(scope="module")
def gan_reference(tmp_path_factory, image) -> Path:
    return _uninterrupted(tmp_path_factory, image, "gan_ref", GAN)


def _kill_in_checkpoint_write(run_dir: Path, image: Path, sig: int, args, nth: int = 2) -> tuple[int, str, Path]:
    """Train with the test hook on (each checkpoint write stops half-written for PAUSE_S) and send
    ``sig`` inside the ``nth`` write (the earlier ones are complete). Returns (exit code, stderr,
    the temp file that was being written)."""
    from sinsemi.data.io import PAUSE_IN_CHECKPOINT_WRITE, PAUSE_MARKER

    err_path = run_dir.parent / f"{run_dir.name}.stderr"
    marks: list[str] = []
    with open(err_path, "w") as err:
        proc = subprocess.Popen([str(BIN / "sinsemi-train"), *args, f"data.image={image}", f"hydra.run.dir={run_dir}"],
                                stdout=subprocess.DEVNULL, stderr=err, text=True,
                                env={**_env(), PAUSE_IN_CHECKPOINT_WRITE: str(PAUSE_S)})
        t0 = time.time()
        while proc.poll() is None and len(marks) < nth and time.time() - t0 < 300:
            time.sleep(0.01)
            marks = [ln for ln in err_path.read_text().splitlines() if ln.startswith(PAUSE_MARKER)]
        assert proc.poll() is None and len(marks) >= nth, f"no checkpoint write {nth} to kill in:\n{err_path.read_text()[-3000:]}"
        tmp = Path(marks[nth - 1].partition(" in checkpoint write ")[2].strip())
        assert tmp.exists() and tmp.stat().st_size > 0 and tmp.name.startswith(".") and ".partial-" in tmp.name
        proc.send_signal(sig)
        proc.wait(timeout=300)
    return proc.returncode, err_path.read_text(), tmp


@pytest.mark.slow
@pytest.mark.parametrize("gen", ["sinsemi", "singan"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_kill_inside_a_checkpoint_write(tmp_path, image, request, gen, sig):
    """The kill lands while the new checkpoint is half-written: the previous one must still load, the
    temp file must be the only trace (kill -9) or gone (SIGTERM), and the rerun must resume and end
    with the weights and samples of an uninterrupted run, no temp file left."""
    args, name = CKPT[gen]
    ref = request.getfixturevalue("reference" if gen == "sinsemi" else "gan_reference")
    run_dir = tmp_path / "run"
    code, err, tmp = _kill_in_checkpoint_write(run_dir, image, sig, args)
    ckpt = run_dir / "checkpoints" / name
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert _partials(run_dir) == [tmp]  # the half-written temp; last checkpoint untouched
        with pytest.raises(Exception):
            torch.load(tmp, map_location="cpu", weights_only=True)
    else:
        assert code == 128 + signal.SIGTERM, err[-3000:]
        assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
            "error: interrupted by SIGTERM: finished steps are kept; rerun the same command to resume"]
        assert "Traceback" not in err
        assert not _partials(run_dir), _partials(run_dir)  # finished (Lightning) or removed (SinGAN)
    assert ckpt.exists()
    stopped = torch.load(ckpt, map_location="cpu", weights_only=True)  # the one a restart resumes from is whole
    if gen == "sinsemi":
        assert 4 <= stopped["global_step"] < 40
    else:
        assert stopped["name"] == "singan" and (stopped["generators"] or stopped["partial"])
    proc = _train(run_dir, image, args=args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_as(run_dir, ref)


def _compose(*overrides: str):
    from hydra import compose, initialize_config_module


    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_sigterm_mid_fit_in_process(tmp_path, image):
    """The default-suite version of the SIGTERM test: the handler, the stop after a step, the
    checkpoint, the Interrupted raised instead of a model, and an identical resume."""
    import threading

    from sinsemi.jobs.signals import interruptible
    from sinsemi.jobs.train import train_run as train
    from sinsemi.errors import Interrupted

    cfg = _compose(*FIT, f"data.image={image}")
    train(cfg, tmp_path / "ref")
    run_dir = tmp_path / "run"

    def send_when_checkpointed():
        t0 = time.time()
        while not (run_dir / "checkpoints" / "last.ckpt").exists() and time.time() - t0 < 120:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_when_checkpointed, daemon=True).start()
    with pytest.raises(Interrupted) as e, interruptible():
        train(cfg, run_dir)
    assert e.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or not callable(getattr(signal.getsignal(signal.SIGTERM), "signal_handlers", None))
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()
    stopped = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert 4 <= stopped < 40
    part = json.loads((run_dir / "progress.json").read_text())["fit_seconds"]
    train(cfg, run_dir)
    _assert_same_as(run_dir, tmp_path / "ref")
    assert json.loads((run_dir / "metrics.json").read_text())["fit_seconds"] > part


def test_death_between_samples_and_grid(tmp_path, image, monkeypatch):
    """In-process (a kill cannot be timed there): the job dies writing the grid; the rerun reuses
    the model, draws the same samples, writes the grid and only then metrics.json."""
    import sinsemi.data.io as io
    from sinsemi.jobs.train import train_run as train

    cfg = _compose("generator=gpnn", "profile=tiny", "logger=none", f"data.image={image}")
    train(cfg, tmp_path / "ref")
    real = io.save_grid

    def dies(samples, path, **kw):
        Path(path).parent.joinpath(f".{Path(path).name}.partial-killed.png").write_bytes(b"")  # what kill -9 leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "save_grid", dies)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "grid.png").exists()
    monkeypatch.setattr(io, "save_grid", real)
    train(cfg, tmp_path / "run")
    for name in ("grid.png", "metrics.json", "samples/samples.npz", "model/state.pt"):
        assert (tmp_path / "run" / name).exists(), name
    with np.load(tmp_path / "ref" / "samples" / "samples.npz") as a, np.load(tmp_path / "run" / "samples" / "samples.npz") as b:
        assert np.array_equal(a["images"], b["images"])
    assert not _partials(tmp_path / "run")
    assert (tmp_path / "run" / "grid.png").read_bytes() == (tmp_path / "ref" / "grid.png").read_bytes()
    assert oct((tmp_path / "run" / "metrics.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


GPNN = ["generator=gpnn", "profile=tiny", "logger=none"]


@pytest.fixture(scope="module")
def gpnn_reference(tmp_path_factory, image) -> Path:
    return _uninterrupted(tmp_path_factory, image, "gpnn_ref", GPNN)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_kill_between_samples_and_grid(tmp_path, image, gpnn_reference, sig):
    """A real signal after the sample PNGs, before the grid and ``samples.npz`` (test hook): the run
    is not finished (no grid, no bundle, no metrics.json), and the rerun reuses the model and ends
    with the samples, grid and artifacts of an uninterrupted run, no temp file left."""
    from sinsemi.data.io import PAUSE_BEFORE_GRID, PAUSE_MARKER

    run_dir, err_path = tmp_path / "run", tmp_path / "run.stderr"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([str(BIN / "sinsemi-train"), *GPNN, f"data.image={image}", f"hydra.run.dir={run_dir}"],
                                stdout=subprocess.DEVNULL, stderr=err, text=True, env={**_env(), PAUSE_BEFORE_GRID: "120"})
        t0 = time.time()
        while proc.poll() is None and PAUSE_MARKER not in err_path.read_text() and time.time() - t0 < 300:
            time.sleep(0.01)
        assert proc.poll() is None, f"the job ended before the pause:\n{err_path.read_text()[-3000:]}"
        proc.send_signal(sig)
        proc.wait(timeout=120)
    err = err_path.read_text()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
        assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
            "error: interrupted by SIGTERM: finished steps are kept; rerun the same command to resume"]
        assert "Traceback" not in err
    assert (run_dir / "model" / "generator.json").exists() and list((run_dir / "samples").glob("*.png"))
    for name in ("grid.png", "samples/samples.npz", "metrics.json"):
        assert not (run_dir / name).exists(), name
    proc = _train(run_dir, image, args=GPNN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing the fitted model" in proc.stderr + proc.stdout
    _assert_same_as(run_dir, gpnn_reference)
    assert (run_dir / "grid.png").read_bytes() == (gpnn_reference / "grid.png").read_bytes()


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_fit_time_is_recorded_while_it_runs(tmp_path):
    """What a kill -9 cannot flush: the time is on disk (to within ``every``) before the end."""
    from sinsemi.runs import accumulating, read_progress

    with accumulating(tmp_path, "fit_seconds", every=0.05):
        time.sleep(0.3)
        during = read_progress(tmp_path)["fit_seconds"]
    assert 0.1 <= during <= 0.3
    with accumulating(tmp_path, "fit_seconds", every=10):
        time.sleep(0.1)
    assert read_progress(tmp_path)["fit_seconds"] >= 0.4 - 0.02


# ----------------------------------------------------------------------------- one writer per run dir
@pytest.mark.slow
def test_two_identical_trainings_on_one_run_dir(tmp_path, image, reference):
    """Two identical commands started together (a SLURM requeue twin, a second terminal): one holds
    the run dir's lock and finishes with the weights of a lone run; the other is refused at once
    with one line naming the holder's PID. (Checkpoint writes pause 2 s so the winner is surely
    still fitting when the other arrives.)"""
    run_dir = tmp_path / "run"
    env = {**_env(), "SINSEMI_TEST_PAUSE_IN_CHECKPOINT_WRITE": "2"}
    cmd = [str(BIN / "sinsemi-train"), *FIT, f"data.image={image}", f"hydra.run.dir={run_dir}"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [(p.returncode, o[1][-2000:]) for p, o in zip(procs, outs)]
    (winner,) = [p for p in procs if p.returncode == 0]
    (_, err), = [o for p, o in zip(procs, outs) if p.returncode == 2]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"run dir {run_dir} is in use by PID {winner.pid} on host" in errors[0]
    _assert_same_as(run_dir, reference)  # and no lock file or temp left behind
    assert not (run_dir / ".lock").exists()


# ----------------------------------------------------------------------------- deterministic bytes
def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("args,files", [
    (["generator=sinsemi", "profile=tiny", "logger=none", "trainer.max_steps=8"], ("model/state.pt", "checkpoints/last.ckpt")),
    # SinGAN's own loop saves through the same writer (data.io.save_checkpoint_file); `make test-slow` checks it
    pytest.param(["generator=singan", "profile=tiny", "logger=none", "generator.niter=4"],
                 ("model/state.pt", "checkpoints/last.pt"), marks=pytest.mark.slow),
], ids=["sinsemi", "singan"])
def test_identical_runs_give_identical_bytes(tmp_path, image, args, files):
    """The same command twice (into the same run dir, the first run deleted) writes the same bytes:
    a checksum proves two runs equal. (Lightning's last.ckpt also records its checkpoint dir's path,
    so it is byte-equal only between runs into the same run dir; state.pt is equal anywhere.)"""
    import shutil

    run_dir = tmp_path / "run"
    sums = []
    for _ in range(2):
        proc = _train(run_dir, image, args=args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        sums.append({f: _sha(run_dir / f) for f in files})
        shutil.rmtree(run_dir)
    assert sums[0] == sums[1]


# ----------------------------------------------------------------------------- eval: own temp files, one writer
@pytest.fixture
def eval_run(tmp_path) -> Path:
    """A fake run dir whose 'samples' are noisy copies of the simulator's references."""
    from sinsemi.data.io import save_json, save_samples
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair("line_pair", seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.stack([pair.defect] * 2 + [pair.clean] * 2)
    x = x + 0.004 * torch.randn(x.shape, generator=g)
    run = tmp_path / "run"
    save_samples(x.clamp(0, 1), run / "samples")
    (run / "config.yaml").write_text("generator:\n  name: fakegen\n")
    save_json({"generator": "fakegen"}, run / "metrics.json")
    return run


EVAL_ARGS = ["profile=tiny", "allow_random_backbone=true", "segmentation=false", "logger=none"]


def test_eval_removes_the_temp_files_of_a_killed_eval(eval_run):
    stale = eval_run / ".defects.json.partial-k1ll3d.json"  # what a kill inside the defects.json write leaves
    stale.write_text("{")
    keep = eval_run / "checkpoints" / ".last.ckpt.partial-x.ckpt"  # a train job's: not eval's to remove
    keep.parent.mkdir()
    keep.write_text("")
    proc = subprocess.run([str(BIN / "sinsemi-eval"), f"samples_dir={eval_run}", *EVAL_ARGS], capture_output=True,
                          text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (eval_run / "defects.json").exists() and not stale.exists() and keep.exists()
    assert not (eval_run / ".lock").exists()


def test_eval_refused_while_another_job_holds_the_run_dir(eval_run):
    import sys

    hold = "import sys, time\nfrom sinsemi.runlock import run_lock\nwith run_lock(sys.argv[1], job='sinsemi-train'):\n" \
           "    print('locked', flush=True); time.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(eval_run)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        metrics = (eval_run / "metrics.json").read_text()
        proc = subprocess.run([str(BIN / "sinsemi-eval"), f"samples_dir={eval_run}", *EVAL_ARGS], capture_output=True,
                              text=True, timeout=600, env=_env())
        assert proc.returncode == 2, proc.stderr[-3000:]
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr
        assert f"is in use by PID {holder.pid} on host" in errors[0] and "(sinsemi-train since" in errors[0]
        assert (eval_run / "metrics.json").read_text() == metrics and not (eval_run / "defects.json").exists()
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------- kill late in sinsemi-sample
SAMPLE_FIT = ["generator=sinsemi", "profile=tiny", "logger=none"]  # sample_batch 4: n=12 is 3 batches


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, image) -> Path:
    return _uninterrupted(tmp_path_factory, image, "sample_run", SAMPLE_FIT)


def _sample(run_dir: Path, out_dir: Path, *extra: str, env: dict | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "sinsemi-sample"), f"run_dir={run_dir}", "n=12", "logger=none", f"out_dir={out_dir}",
                             *extra], env={**_env(), **(env or {})}, text=True, **popen)


def _files(d: Path) -> dict[str, bytes]:
    """Every file of a samples dir but metrics.json (its sample_seconds is a time), by name."""
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file() and p.name != "metrics.json"}


@pytest.mark.slow
def test_kill_late_in_sampling_reuses_the_finished_samples(tmp_path, sample_run):
    """kill -9 of sinsemi-sample after 2 of its 3 batches are committed (test hook): the rerun
    draws only the last batch (its log counts the 8 reused; their PNGs are not rewritten) and ends
    with files byte-identical to an uninterrupted run's, no temp or part file left."""
    from sinsemi.data.io import PAUSE_MARKER
    from sinsemi.streaming import PAUSE_AFTER_BATCHES

    ref = tmp_path / "ref"
    done = _sample(sample_run, ref, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert done.wait(timeout=600) == 0, done.stdout.read()[-3000:]
    out, err_path = tmp_path / "killed", tmp_path / "killed.stderr"
    with open(err_path, "w") as err:
        proc = _sample(sample_run, out, env={PAUSE_AFTER_BATCHES: "0.6:120"}, stdout=subprocess.DEVNULL, stderr=err)
        t0 = time.time()
        while proc.poll() is None and PAUSE_MARKER not in err_path.read_text() and time.time() - t0 < 300:
            time.sleep(0.01)
        assert proc.poll() is None, f"the job ended before the pause:\n{err_path.read_text()[-3000:]}"
        proc.kill()
        proc.wait(timeout=60)
    assert f"{PAUSE_MARKER} after 8 of 12 samples" in err_path.read_text()
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(8)]
    assert not (out / "samples.npz").exists() and not (out / "metrics.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    rerun = _sample(sample_run, out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, log[-3000:]
    assert f"reusing 8 finished samples in {out}; drawing the other 4" in log
    assert all((out / name).stat().st_mtime_ns == ns for name, ns in before.items())  # not drawn again
    assert _files(out) == _files(ref)  # PNGs, grid.png, samples.npz
    a, b = ({k: v for k, v in json.loads((d / "metrics.json").read_text()).items() if k != "sample_seconds"} for d in (out, ref))
    assert a == b
    assert not _partials(out) and not (out / ".parts").exists()
