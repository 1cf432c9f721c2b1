"""Bad input on every CLI (train, sample, simulate, eval), run as a user runs it (a subprocess, no HYDRA_FULL_ERROR): exit 2, one
``error:`` line naming the problem, no traceback, nothing of the run written. Then the run
fingerprint: a run dir is never reused or resumed with other inputs, and sinsemi-sample follows the
run it samples."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from tests._cli import BIN, write_tiny_png

TINY = ["profile=tiny", "logger=none"]


def run(name: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    e = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **(env or {})}
    e.pop("HYDRA_FULL_ERROR", None)  # tests/conftest.py sets it; users do not
    return subprocess.run([str(BIN / f"sinsemi-{name}"), *args], capture_output=True, text=True, timeout=timeout, env=e)


def assert_one_error(proc: subprocess.CompletedProcess, match: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert match in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_image_module):
    d = tmp_path_factory.mktemp("inputs")
    write_tiny_png(d / "tiny.png", tiny_image_module)
    tifffile.imwrite(d / "hdr.tif", np.linspace(-0.5, 2.0, 32 * 32, dtype=np.float32).reshape(32, 32))
    write_tiny_png(d / "const.png", torch.full((1, 32, 32), 0.5))
    write_tiny_png(d / "wide.png", torch.rand(1, 32, 48, generator=torch.Generator().manual_seed(0)))
    write_tiny_png(d / "small.png", torch.rand(1, 3, 3, generator=torch.Generator().manual_seed(1)))
    write_tiny_png(d / "thin.png", torch.rand(1, 1, 32, generator=torch.Generator().manual_seed(2)))
    (d / "a_file").write_text("x")
    (d / "weights").mkdir()
    return d


@pytest.fixture(scope="module")
def tiny_image_module():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(32).float()
    img = (0.5 + 0.2 * torch.cos(2 * torch.pi * x / 10))[None, None, :].expand(1, 32, 32).clone()
    img[:, 14:18, 12:20] = 0.3
    return (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1)


# (case, generator, extra args, env, expected text). {d} is the inputs dir.
TRAIN_CASES = [
    ("precision", "gpnn", ["trainer.precision=garbage"], {}, "trainer.precision must be one of"),
    ("seed_negative", "gpnn", ["seed=-1"], {}, "seed must be an integer >= 0, got -1"),
    ("seed_text", "gpnn", ["seed=abc"], {}, "seed must be an integer >= 0, got 'abc'"),
    ("checkpoint_every", "sinsemi", ["trainer.checkpoint_every=0"], {}, "trainer.checkpoint_every must be an integer > 0"),
    ("max_steps", "sinsemi", ["trainer.max_steps=-3"], {}, "trainer.max_steps must be an integer > 0"),
    ("sampler_steps", "sinsemi", ["sampler.steps=0"], {}, "sampler.steps must be an integer > 0, got 0"),
    ("n_samples", "gpnn", ["n_samples=0"], {}, "n_samples must be an integer > 0, got 0"),
    ("unknown_sampler_key", "singan", ["+sampler.steps=3"], {}, "unknown sampler setting(s) sampler.steps for generator singan"),
    ("run_dir_under_a_file", "gpnn", ["hydra.run.dir={d}/a_file/run"], {}, "cannot create output directory"),
    ("float_out_of_range", "gpnn", ["data.image={d}/hdr.tif"], {}, "values in [-0.5, 2], outside [0, 1]"),
    ("constant_image", "gpnn", ["data.image={d}/const.png"], {}, "is constant"),
    ("too_large", "gpnn", ["data.image={d}/wide.png", "data.max_side=40"], {}, "over the limit of 40 px a side (data.max_side=40)"),
    ("eval_weights", "gpnn", ["evaluate=true"], {"SINSEMI_WEIGHTS_DIR": "{d}/weights"}, "evaluate=true needs pretrained LPIPS"),
    ("guidance_weights", "sinsemi", ["sampler.guidance=1.0"], {"SINSEMI_WEIGHTS_DIR": "{d}/weights"},
     "sampler.guidance=1.0 needs pretrained LPIPS 'alex' weights"),
    ("generator_param", "sinsemi", ["generator.width=7"], {}, "width must be even, got 7"),
    ("ckpt_path", "gpnn", ["ckpt_path=first"], {}, "ckpt_path=first: no such file"),
    ("ckpt_path_training_free", "gpnn", ["ckpt_path={d}/a_file"], {}, "generator gpnn is training-free"),
    ("ckpt_path_dir", "sinsemi", ["ckpt_path={d}/weights"], {}, "is a directory: name the checkpoint file"),
    # issue 25: limits before any work or write
    ("seed_huge", "gpnn", ["seed=1180591620717411303424"], {}, "seed must be an integer >= 0 and <= 4294967295"),
    ("seed_base_huge", "sinsemi", ["seed_base=4294967295"], {}, "seed_base=4294967295 with n_samples=4 needs seeds up to"),
    ("n_samples_huge", "gpnn", ["n_samples=1000000000"], {}, "n_samples=1000000000 is over the limit of 1000000 samples"),
    ("guidance_inf", "sinsemi", ["sampler.guidance=inf"], {}, "sampler.guidance must be a finite number"),
    ("guidance_nan", "sinsemi", ["sampler.guidance=nan"], {}, "sampler.guidance must be a finite number"),
    ("noise_std_text", "gpnn", ["sampler.noise_std=abc"], {}, "sampler.noise_std must be a number (its default is 0.75), got 'abc'"),
    ("unknown_top_level_key", "gpnn", ["+n_sample=100"], {}, "unknown setting(s) n_sample for sinsemi-train"),
    ("image_3x3", "gpnn", ["data.image={d}/small.png"], {}, "gpnn: image 3x3 is too small"),
    ("image_1x32", "sinsemi", ["data.image={d}/thin.png"], {}, "image 1x32 is smaller than the coarsest pyramid level"),
]


@pytest.mark.parametrize("case,gen,args,env,match", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input(tmp_path, files, case, gen, args, env, match):
    run_dir = tmp_path / "run"
    args = [a.format(d=files) for a in args]
    image = [] if any(a.startswith("data.image=") for a in args) else [f"data.image={files / 'tiny.png'}"]
    rd = [] if any(a.startswith("hydra.run.dir=") for a in args) else [f"hydra.run.dir={run_dir}"]
    proc = run("train", f"generator={gen}", *TINY, *image, *rd, *args, env={k: v.format(d=files) for k, v in env.items()})
    assert_one_error(proc, match)
    written = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert not written & {"config.yaml", "fingerprint.json", "progress.json", "model", "checkpoints", "samples",
                          "metrics.json", "wandb_id.json", ".lock"}


def test_a_corrected_rerun_after_a_too_small_image_needs_no_force(tmp_path, files):
    """The image check of the generator's fit refuses a 3x3 image; the corrected command into the
    same run dir then runs (issue 25 case 6: it was refused until force=true)."""
    run_dir = tmp_path / "run"
    base = ["generator=gpnn", *TINY, f"hydra.run.dir={run_dir}"]
    assert_one_error(run("train", *base, f"data.image={files / 'small.png'}"), "is too small")
    proc = run("train", *base, f"data.image={files / 'tiny.png'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "fingerprint.json").read_text())["image_shape"] == [1, 32, 32]


def test_gpu_without_cuda(tmp_path, files):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = run("train", "generator=gpnn", *TINY, f"data.image={files / 'tiny.png'}", f"hydra.run.dir={tmp_path}/r",
               "trainer.accelerator=gpu")
    assert_one_error(proc, "trainer.accelerator=gpu but no CUDA device")


def _fake_run(root: Path, config_gen: str, model_gen: str | None) -> Path:
    run_dir = root / "fake"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"generator": {"name": config_gen}, "profile_name": "tiny"}))
    if model_gen:
        (run_dir / "model").mkdir()
        (run_dir / "model" / "generator.json").write_text(json.dumps({"name": model_gen, "format": 1, "params": {}}))
    return run_dir


SAMPLE_CASES = [
    ("not_a_run_dir", None, None, [], "is not a training run dir (no config.yaml)"),
    ("config_and_model_disagree", "singan", "sinsemi", [], "config.yaml names generator 'singan' but"),
    ("generator_on_command_line", "gpnn", "gpnn", ["generator=sinsemi"], "generator=sinsemi but"),
    ("no_model", "gpnn", None, [], "no trained model in"),
    ("n_zero", "gpnn", "gpnn", ["n=0"], "n must be an integer > 0, got 0"),
    ("seed_base", "gpnn", "gpnn", ["seed_base=-2"], "seed_base must be an integer >= 0, got -2"),
    ("unknown_sampler_key", "gpnn", "gpnn", ["+sampler.steps=5"], "unknown sampler setting(s) sampler.steps for generator gpnn"),
    ("precision", "gpnn", "gpnn", ["trainer.precision=fp8"], "trainer.precision must be one of"),
    # issue 25
    ("n_huge", "gpnn", "gpnn", ["n=1000000000"], "n=1000000000 is over the limit of 1000000 samples per job"),
    ("seed_base_huge", "gpnn", "gpnn", ["seed_base=1180591620717411303424"], "seed_base must be an integer >= 0 and <= 4294967295"),
    ("noise_std_text", "gpnn", "gpnn", ["sampler.noise_std=abc"], "sampler.noise_std must be a number (its default is 0.75)"),
    ("noise_std_inf", "gpnn", "gpnn", ["sampler.noise_std=inf"], "sampler.noise_std must be a finite number"),
    ("unknown_top_level_key", "gpnn", "gpnn", ["+n_sample=100"], "unknown setting(s) n_sample for sinsemi-sample"),
]


@pytest.mark.parametrize("case,config_gen,model_gen,args,match", SAMPLE_CASES, ids=[c[0] for c in SAMPLE_CASES])
def test_sample_bad_input(tmp_path, case, config_gen, model_gen, args, match):
    run_dir = _fake_run(tmp_path, config_gen, model_gen) if config_gen else tmp_path / "nothing"
    proc = run("sample", f"run_dir={run_dir}", *args)
    assert_one_error(proc, match)
    # nothing but Hydra's own log dir: no samples/<settings>/ (not even one holding only wandb_id.json)
    assert not [p for p in run_dir.glob("samples/*") if p.name != ".hydra"]


SIMULATE_CASES = [
    ("seed_text", ["seed=abc"], "seed must be an integer >= 0, got 'abc'"),
    ("seed_negative", ["seed=-1"], "seed must be an integer >= 0, got -1"),
    ("preset", ["preset=nope"], "nope"),
    ("n_text", ["test_set=paper", "n=many"], "n must be an integer > 0, got 'many'"),
    ("out_dir_under_a_file", ["out_dir={d}/a_file/out"], "cannot create output directory"),
]


@pytest.mark.parametrize("case,args,match", SIMULATE_CASES, ids=[c[0] for c in SIMULATE_CASES])
def test_simulate_bad_input(tmp_path, files, case, args, match):
    args = [a.format(d=files) for a in args]
    out = [] if any(a.startswith("out_dir=") for a in args) else [f"out_dir={tmp_path / 'out'}"]
    proc = run("simulate", *out, *args)
    assert_one_error(proc, match)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def eval_files(tmp_path_factory):
    """Reference pairs and sample dirs, good and bad, for sinsemi-eval."""
    from sinsemi.data.io import save_png
    from sinsemi.data.optics import make_reference_pair

    d = tmp_path_factory.mktemp("eval_inputs")
    pair = make_reference_pair("line_pair", seed=0)  # 96x96, one channel
    save_png(pair.defect, d / "defect.png")
    save_png(pair.clean, d / "clean.png")
    (d / "empty.png").write_bytes(b"")
    png = (d / "clean.png").read_bytes()
    (d / "truncated.png").write_bytes(png[: len(png) // 2])
    save_png(torch.cat([pair.defect, 0.5 * pair.defect, 0.8 * pair.defect]), d / "defect_rgb.png")
    save_png(torch.cat([pair.clean, 0.5 * pair.clean, 0.8 * pair.clean]), d / "clean_rgb.png")
    save_png(torch.full_like(pair.clean, 0.4), d / "constant.png")
    save_png(pair.defect[:, 30:54, 30:54], d / "small_defect.png")  # 24 px: under LPIPS alex's 31
    save_png(pair.clean[:, 30:54, 30:54], d / "small_clean.png")
    save_png(pair.clean[:, :64, :64], d / "clean64.png")
    nan = pair.clean[0].numpy().astype(np.float32).copy()
    nan[5, 7] = np.nan
    tifffile.imwrite(d / "clean_nan.tif", nan)
    for sub, images in {"samples": [pair.defect, pair.clean], "small_samples": [pair.defect[:, 30:54, 30:54]],
                        "mixed_samples": [pair.defect, pair.defect[:, :64, :64]], "no_samples": []}.items():
        (d / sub).mkdir()
        for i, im in enumerate(images):
            save_png(im, d / sub / f"{i:05d}.png")
    write_tiny_png(d / "small.png", torch.rand(1, 3, 3, generator=torch.Generator().manual_seed(1)))
    write_tiny_png(d / "thin.png", torch.rand(1, 1, 32, generator=torch.Generator().manual_seed(2)))
    (d / "a_file").write_text("x")
    return d


# (case, args, expected text): {d} is eval_files; the defaults are the good pair and d/samples
EVAL_CASES = [
    ("missing_reference", ["reference.defect={d}/nope.png"], "image file not found: {d}/nope.png"),
    ("empty_reference", ["reference.clean={d}/empty.png"], "image file is empty (0 bytes): {d}/empty.png"),
    ("truncated_png", ["reference.clean={d}/truncated.png"], "cannot read image {d}/truncated.png: not a readable image or truncated"),
    # colour is kept as colour (data.io policy: generators and metrics are channel-agnostic), so an RGB
    # pair is fine for RGB samples; against grey samples, or beside a grey reference, it is refused
    ("colour_reference", ["reference.defect={d}/defect_rgb.png", "reference.clean={d}/clean_rgb.png"],
     "samples are (1, 96, 96) (C, H, W) but the references are (3, 96, 96): sizes and channels must match"),
    ("colour_and_grey_reference", ["reference.defect={d}/defect_rgb.png"],
     "reference.defect={d}/defect_rgb.png is (3, 96, 96) (C, H, W) but reference.clean={d}/clean.png is (1, 96, 96)"),
    ("constant_reference", ["reference.clean={d}/constant.png"], "reference.clean={d}/constant.png is constant"),
    ("too_small_reference", ["reference.defect={d}/small_defect.png", "reference.clean={d}/small_clean.png",
                             "samples_dir={d}/small_samples"], "are 24x24 px: too small to evaluate (LPIPS 'alex'"),
    ("too_large_reference", ["reference.max_side=64"], "is 96x96 px, over the limit of 64 px a side (reference.max_side=64)"),
    ("nan_tiff", ["reference.clean={d}/clean_nan.tif"], "image {d}/clean_nan.tif holds 1 NaN/inf pixel value(s)"),
    ("references_differ_in_size", ["reference.clean={d}/clean64.png"], "but reference.clean={d}/clean64.png is (1, 64, 64)"),
    ("one_reference_only", ["reference.clean=null"], "give both reference.defect and reference.clean"),
    ("no_samples_dir", ["samples_dir={d}/nope"], "samples not found: {d}/nope"),
    ("empty_samples_dir", ["samples_dir={d}/no_samples"], "no images found in {d}/no_samples"),
    ("mixed_size_samples", ["samples_dir={d}/mixed_samples"],
     "images in {d}/mixed_samples differ in size/channels: 00000.png is (1, 96, 96), 00001.png is (1, 64, 64)"),
    ("out_dir_under_a_file", ["out_dir={d}/a_file/out"], "cannot create output directory {d}/a_file/out (out_dir): {d}/a_file is a file"),
    ("out_dir_read_only", ["out_dir={ro}/out"], "output directory {ro}/out (out_dir) is not writable"),
    ("unknown_setting", ["+segmentaton=true"], "unknown eval setting(s) segmentaton"),
    ("unknown_reference_key", ["+reference.defekt=x.png"], "unknown reference setting(s): ['defekt']"),
    ("n_text", ["n=many"], "n must be an integer > 0 (or null), got 'many'"),
    ("test_set_dir", ["segmentation=true", "test_set.dir={d}/nope"], "test_set.dir={d}/nope is not a directory"),
]


@pytest.mark.parametrize("case,args,match", EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_eval_bad_input(tmp_path, eval_files, case, args, match):
    ro = tmp_path / "read_only"
    if case == "out_dir_read_only":
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only directory")
        ro.mkdir()
        ro.chmod(0o555)
    d, out = eval_files, tmp_path / "out"
    fmt = {"d": d, "ro": ro}
    args = [a.format(**fmt) for a in args]
    given = {a.lstrip("+").partition("=")[0] for a in args}
    defaults = [f"{k}={v}" for k, v in (("samples_dir", d / "samples"), ("out_dir", out), ("reference.defect", d / "defect.png"),
                                        ("reference.clean", d / "clean.png")) if k not in given]
    proc = run("eval", "profile=tiny", "segmentation=false", "probe=false", "allow_random_backbone=true",
               f"hydra.run.dir={tmp_path / 'hydra'}", *defaults, *args)
    assert_one_error(proc, match.format(**fmt))
    assert not out.exists()  # nothing written, not even the dir
    assert not (ro / "out").exists()


# ----------------------------------------------------------------------------- fingerprint
@pytest.fixture(scope="module")
def trained(tmp_path_factory, files):
    run_dir = tmp_path_factory.mktemp("fp") / "run"
    proc = run("train", "generator=gpnn", *TINY, f"data.image={files / 'tiny.png'}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_fingerprint_is_written_and_a_rerun_with_other_inputs_is_refused(trained, files, tmp_path):
    fp = json.loads((trained / "fingerprint.json").read_text())
    assert fp["generator"] == "gpnn" and fp["seed"] == 0 and fp["image_shape"] == [1, 32, 32]
    config = (trained / "config.yaml").read_text()
    other = write_tiny_png(tmp_path / "other.png", torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(3)))
    cases = [([f"data.image={other}"], "another training image"),
             ([f"data.image={files / 'tiny.png'}", "generator.patch_size=5"], "generator.patch_size=7 there, 5 here")]
    for args, match in cases:
        proc = run("train", "generator=gpnn", *TINY, f"hydra.run.dir={trained}", *args)
        assert_one_error(proc, match)
        assert "force=true" in proc.stderr
        assert (trained / "config.yaml").read_text() == config  # never rewritten to disagree with the model


@pytest.mark.slow
def test_rerun_with_another_generator_is_refused(trained, files):
    proc = run("train", "generator=sinsemi", *TINY, f"hydra.run.dir={trained}", f"data.image={files / 'tiny.png'}")
    assert_one_error(proc, "generator='gpnn' there, 'sinsemi' here")


def test_sample_follows_the_run_profile_and_sampler(trained):
    # trained with profile=tiny: sinsemi-sample without profile= must not compose the quick profile
    proc = run("sample", f"run_dir={trained}", "n=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_sampler = yaml.safe_load((trained / "config.yaml").read_text())["sampler"]
    (out,) = [p for p in (trained / "samples").iterdir() if p.is_dir() and not p.name.startswith(".")]
    m = json.loads((out / "metrics.json").read_text())
    assert m["sampler"] == run_sampler and m["n_samples"] == 2
    assert (out / "grid.png").exists() and (out / "samples.npz").exists()


@pytest.mark.slow
def test_sample_command_line_wins_over_the_run(trained):
    run_sampler = yaml.safe_load((trained / "config.yaml").read_text())["sampler"]
    proc = run("sample", f"run_dir={trained}", "n=2", "sampler.noise_std=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (m,) = [json.loads(p.read_text()) for p in (trained / "samples").glob("*noise_std0.5*/metrics.json")]
    assert m["sampler"] == {**run_sampler, "noise_std": 0.5}


@pytest.mark.slow
def test_force_starts_a_mismatching_run_again(tmp_path, files):
    run_dir = tmp_path / "run"
    base = ["generator=gpnn", *TINY, f"hydra.run.dir={run_dir}", f"data.image={files / 'tiny.png'}"]
    assert run("train", *base).returncode == 0
    proc = run("train", *base, "seed=1", "force=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "fingerprint.json").read_text())["seed"] == 1
    assert json.loads((run_dir / "metrics.json").read_text())["seed"] == 1
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 1


def test_sample_n_huge_fails_fast(tmp_path):
    """n=10^9 used to build 10^9 seeds and be OOM-killed: now one line, long before any sampling
    (the bound is the interpreter's start-up, seconds on a busy 2-core machine)."""
    import time

    run_dir = _fake_run(tmp_path, "gpnn", "gpnn")
    t0 = time.perf_counter()
    assert_one_error(run("sample", f"run_dir={run_dir}", "n=1000000000"), "over the limit")
    assert time.perf_counter() - t0 < 60


def test_sample_job_refuses_n_huge_in_under_a_second(tmp_path):
    """The job's own work before the refusal, timed in-process (no interpreter start-up): the run's
    facts are read, n is refused, and nothing is loaded or written (the fake run has no weights)."""
    import time

    from sinsemi.checks import MAX_SAMPLES
    from sinsemi.errors import InputError
    from sinsemi.jobs.sample import sample_run

    run_dir = _fake_run(tmp_path, "gpnn", "gpnn")
    cfg = {"run_dir": str(run_dir), "generator": {"name": "gpnn"}, "sampler": {}, "n": 10**9, "seed_base": 0,
           "trainer": {"accelerator": "cpu", "precision": "32-true", "devices": 1, "progress": False}}
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=f"n=1000000000 is over the limit of {MAX_SAMPLES} samples per job"):
        sample_run(cfg)
    assert time.perf_counter() - t0 < 1.0
    assert not (run_dir / "samples").exists()


# ----------------------------------------------------------------------------- a run dir is data (issue 25)
def _copy_run(trained: Path, tmp_path: Path) -> Path:
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir, ignore=shutil.ignore_patterns("samples"))
    return run_dir


def _edit_config(run_dir: Path, section: str, key: str, value) -> None:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg[section][key] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_an_interpolation_in_a_run_config_reaches_no_output(trained, tmp_path):
    """A shared run dir whose config.yaml holds ``${oc.env:...}`` must not make sinsemi-sample
    resolve it: the secret appears in no file written, nor on stdout/stderr."""
    marker = "MARKER-5ecret-25"
    run_dir = _copy_run(trained, tmp_path)
    _edit_config(run_dir, "sampler", "noise_std", "${oc.env:SINSEMI_TEST_SECRET}")
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    proc = run("sample", f"run_dir={run_dir}", "n=2", env={"SINSEMI_TEST_SECRET": marker})
    assert_one_error(proc, "holds an interpolation ('${...}') at sampler.noise_std")
    assert marker not in proc.stdout + proc.stderr
    for p in run_dir.rglob("*"):
        if p.is_file():
            assert marker.encode() not in p.read_bytes(), p
    new = [p for p in run_dir.rglob("*") if p.is_file() and p not in before and ".hydra" not in p.parts]
    assert not new, new


@pytest.mark.parametrize("section,key,value,match", [
    ("generator", "patch_size", 5, "says generator.patch_size=5 but the run's model was trained with generator.patch_size=7"),
    ("sampler", "noise_std", 0.5, "says sampler.noise_std=0.5 but the run sampled with sampler.noise_std=0.75"),
])
def test_a_hand_edited_run_config_is_refused(trained, tmp_path, section, key, value, match):
    run_dir = _copy_run(trained, tmp_path)
    _edit_config(run_dir, section, key, value)
    assert_one_error(run("sample", f"run_dir={run_dir}", "n=2"), match)
    assert not [p for p in run_dir.glob("samples/*") if p.name != ".hydra"]


def test_a_missing_fingerprint_is_not_rewritten_to_other_inputs(trained, tmp_path):
    """fingerprint.json and metrics.json deleted, a rerun with another image: refused (it used to
    reuse the model and rewrite the fingerprint to claim the other image)."""
    run_dir = _copy_run(trained, tmp_path)
    (run_dir / "fingerprint.json").unlink()
    (run_dir / "metrics.json").unlink()
    config = (run_dir / "config.yaml").read_text()
    other = write_tiny_png(tmp_path / "other.png", torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(3)))
    proc = run("train", "generator=gpnn", *TINY, f"hydra.run.dir={run_dir}", f"data.image={other}")
    assert_one_error(proc, "no fingerprint.json: the image it was made from is unknown")
    assert not (run_dir / "fingerprint.json").exists() and not (run_dir / "metrics.json").exists()
    assert (run_dir / "config.yaml").read_text() == config


# ----------------------------------------------------------------------------- issue 25, item 9
def test_paper_profile_on_the_cpu_warns_up_front(tmp_path):
    """profile=paper with trainer.accelerator=cpu: one warning line (its budget, "a GPU is meant")
    before any work; a warning, not an error (here the missing image then stops the job)."""
    proc = run("train", "generator=sinsemi", "profile=paper", "trainer.accelerator=cpu", "logger=none",
               f"data.image={tmp_path / 'missing.png'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_error(proc, "image file not found")
    warned = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "a GPU is meant" in ln]
    assert len(warned) == 1 and "profile=paper on the CPU: sinsemi with generator.iterations=" in warned[0], proc.stdout


def test_paper_on_cpu_names_the_budget_and_only_fires_for_paper_on_a_cpu():
    from sinsemi.validation import paper_on_cpu

    cfg = {"profile_name": "paper", "n_samples": 7, "trainer": {"accelerator": "cpu", "max_steps": None},
           "generator": {"name": "sinddm", "steps": 11}}
    line = paper_on_cpu(cfg)
    assert "sinddm with generator.steps=11 and n_samples=7" in line and "a GPU is meant" in line and "\n" not in line
    assert "trainer.max_steps=5" in paper_on_cpu({**cfg, "trainer": {"accelerator": "cpu", "max_steps": 5}})
    assert paper_on_cpu({**cfg, "profile_name": "quick"}) is None


def test_alpha_channel_is_dropped_with_one_warning_naming_the_file(tmp_path, caplog):
    from PIL import Image

    from sinsemi.data.io import load_image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = np.arange(64, dtype=np.uint8).reshape(8, 8, 1) * 3
    rgba[..., 3] = 255
    rgba[0, :3, 3] = 0  # three transparent pixels
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with caplog.at_level("WARNING", logger="sinsemi.io"):
        img = load_image(tmp_path / "a.png")
    assert tuple(img.shape) == (1, 8, 8)  # alpha gone; the equal R, G, B become one channel
    assert [r.getMessage() for r in caplog.records] == [
        f"image {tmp_path / 'a.png'} has an alpha channel: dropped (3 of 64 pixels were not opaque)"]


def test_symlink_loop_as_data_image_says_so(tmp_path):
    from sinsemi.data.io import load_image
    from sinsemi.errors import InputError

    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(InputError, match="is a symlink to .*gone.png, which does not exist"):
        load_image(tmp_path / "dangling.png")
    proc = run("train", "generator=gpnn", *TINY, f"data.image={tmp_path / 'a.png'}", f"hydra.run.dir={tmp_path / 'run'}")
    err = assert_one_error(proc, f"image path {tmp_path / 'a.png'} is a symlink loop")
    assert "not found" not in err


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_refusal_is_one_line_without_torch_advice(tmp_path):
    """A state.pt whose pickle would run code: refused in one line that says so, never torch's
    "re-run with weights_only=False" (which would run it); the code did not run."""
    marker = tmp_path / "ran"
    run_dir = _fake_run(tmp_path, "gpnn", "gpnn")
    torch.save({"levels": _Evil(marker)}, run_dir / "model" / "state.pt")
    err = assert_one_error(run("sample", f"run_dir={run_dir}", "n=2", "logger=none"),
                           f"refusing to load {run_dir / 'model' / 'state.pt'}: it holds pickled code or objects")
    assert "weights_only=False" not in err and "Re-running" not in err
    assert not marker.exists()
