"""sinsemi-export and the Python API on tiny trained runs: the README's snippet, the bit depth and
intensity range of the images, batch-size independence, resume after kill -9, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._cli import run_cli

REPO = Path(__file__).resolve().parents[1]
EXPORT = [sys.executable, "-m", "sinsemi.cli.export"]  # the console script's module (installed or not)


def _env() -> dict:
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A SinSEMI run at profile=tiny on the simulator's default image (96 x 96, 8-bit scale), at outputs/demo."""
    root = tmp_path_factory.mktemp("api")
    run_cli("train", "profile=tiny", "logger=none", f"hydra.run.dir={root / 'outputs' / 'demo'}")
    return root / "outputs" / "demo"


@pytest.fixture(scope="module")
def run16(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A run trained on a narrow-range 16-bit PNG (values 30000..30200: flat in 8 bits)."""
    from sinsemi.data.optics import make_reference_pair

    root = tmp_path_factory.mktemp("run16")
    d = make_reference_pair().defect[0].numpy()
    arr = np.round(30000 + 200 * (d - d.min()) / (d.max() - d.min())).astype(np.uint16)
    Image.fromarray(arr).save(root / "train16.png")
    run_cli("train", "profile=tiny", "logger=none", f"data.image={root / 'train16.png'}", f"hydra.run.dir={root / 'run'}")
    return root / "run", arr


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_readme_python_snippet_runs(run_dir, monkeypatch):
    """The README's "Python API" block, executed as written in a dir whose outputs/demo is a tiny run."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(run_dir.parent.parent)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert tuple(ns["images"].shape) == (16, 1, 96, 96) and ns["images"].dtype.is_floating_point
    assert tuple(ns["more"].shape) == (4, 1, 96, 96)
    run = ns["run"]
    assert run.sampler["steps"] == 3  # the tiny profile's own sampler, not the generator's 300-step default
    ds = Path(ns["ds"])
    lines = (ds / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 16 and len(list((ds / "images").glob("*.png"))) == 16 and len(list((ds / "masks").glob("*.png"))) == 16
    rec = json.loads(lines[3])
    assert rec["seed"] == 3 and rec["sampler"]["steps"] == 3 and rec["fingerprint"]["generator"] == "sinsemi"
    assert rec["defect_count"] == len(rec["centroids"]) == len(rec["areas"])
    assert "sinsemi" in (ds / "README.md").read_text()
    # generate(seed=s)[i] is the exported image i of seed_base=s (8-bit: round(x * 255))
    img = np.array(Image.open(ds / rec["image"]))
    assert img.dtype == np.uint8
    expect = np.floor(ns["images"][3, 0].clamp(0, 1).double().numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(img, expect)


def test_16bit_image_gives_16bit_images_in_its_range(run16, tmp_path):
    from sinsemi.export import export_dataset

    run, train = run16
    out = export_dataset(run, 4, tmp_path / "ds", batch=2, progress=False)
    lo, hi = int(train.min()), int(train.max())
    for p in sorted((out / "images").glob("*.png")):
        with Image.open(p) as im:
            assert im.mode == "I;16", im.mode
            a = np.array(im)
        assert a.dtype == np.uint16
        p1, p99 = np.percentile(a, [1, 99])
        assert lo - 100 <= p1 and p99 <= hi + 100, (p1, p99, lo, hi)  # the training image's scale, not [0, 65535]
        assert p99 - p1 > 0.5 * (hi - lo), (p1, p99)  # not flat: the range is kept (8 bits would give 1 level)
    assert "16-bit" in (out / "README.md").read_text()


def test_batch_size_does_not_change_the_files(run_dir, tmp_path):
    from sinsemi.export import export_dataset

    a = export_dataset(run_dir, 5, tmp_path / "a", batch=1, seed_base=7, mask="footprint", progress=False)
    b = export_dataset(run_dir, 5, tmp_path / "b", batch=5, seed_base=7, mask="footprint", progress=False)
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for k in fa:
        if k != "export.json":  # names its out_dir's run_dir only: same here
            assert fa[k] == fb[k], k


def test_kill_midway_then_rerun_gives_the_same_files(run_dir, tmp_path):
    from sinsemi.export import export_dataset

    n = 24
    ref = export_dataset(run_dir, n, tmp_path / "ref", batch=4, progress=False)
    out = tmp_path / "killed"
    args = [*EXPORT, f"run_dir={run_dir}", f"n={n}", f"out_dir={out}", "batch=1", "progress=false"]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_text().count("\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the export ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= manifest.read_text().count("\n") < n
    assert not (out / "README.md").exists()
    rerun = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    fr, fk = _files(ref), _files(out)
    assert sorted(fr) == sorted(fk)  # no temp file left behind
    for k in fr:
        if k != "export.json":
            assert fr[k] == fk[k], k


def test_rerun_with_other_settings_and_bad_input_refused(run_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    proc = subprocess.run([*EXPORT, f"run_dir={run_dir}", "n=2", f"out_dir={out}", "mask=bogus"], env=_env(),
                          capture_output=True, text=True, timeout=300)  # the console script's path, once
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "mask must be one of" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not out.exists()
    from sinsemi.cli.export import main

    for bad, text in [("n=0", "n must be"), ("sampler.bogus=1", "unknown sampler"), ("format=tiff", "format must be one of")]:
        monkeypatch.setattr(sys, "argv", ["sinsemi-export", f"run_dir={run_dir}", "n=2", f"out_dir={out}", bad,
                                          f"hydra.run.dir={tmp_path / 'h'}"])
        with pytest.raises(SystemExit) as e:
            main()
        err = capsys.readouterr().err
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert e.value.code == 2 and len(errors) == 1 and text in errors[0], err[-2000:]
        assert "Traceback" not in err and not out.exists()
    proc = subprocess.run([*EXPORT, f"run_dir={tmp_path / 'missing'}", "n=2", f"out_dir={out}"], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not a training run dir" in proc.stderr and not out.exists()
    from sinsemi.errors import InputError
    from sinsemi.export import export_dataset

    export_dataset(run_dir, 1, out, progress=False)
    with pytest.raises(InputError, match="other settings"):
        export_dataset(run_dir, 1, out, sampler={"steps": 2}, progress=False)


def test_coco_annotations(run_dir, tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_api

    from sinsemi.export import export_dataset

    out = export_dataset(run_dir, 3, tmp_path / "ds", fmt="coco", mask="footprint", progress=False)
    coco = json.loads((out / "annotations.json").read_text())
    assert [im["id"] for im in coco["images"]] == [0, 1, 2]
    for im in coco["images"]:
        m = np.array(Image.open(out / im["file_name"].replace("images/", "masks/"))) > 0
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        union = np.zeros_like(m)
        for a in anns:
            union |= mask_api.decode({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()}).astype(bool)
        assert np.array_equal(union, m)  # the instances cover exactly the mask
