"""``sinsemi-simulate``: files written, test sets, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from sinsemi.jobs.config import initialized
from sinsemi.jobs.simulate import simulate_run as simulate_cli
from sinsemi.errors import InputError
from tests._cli import run_cli


def _cfg(*overrides: str):
    with initialized():
        return compose("simulate", overrides=list(overrides))


def test_cli_writes_the_reference_pair(tmp_path):
    out = tmp_path / "sim"
    proc = run_cli("simulate", "preset=line_pair", "seed=0", f"out_dir={out}")
    assert proc.returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["defect.png", "mask.png", "meta.json", "reference.png"]
    for name in ("defect.png", "reference.png", "mask.png"):
        with Image.open(out / name) as im:
            assert im.size == (96, 96) and im.mode == "L"
    mask = np.array(Image.open(out / "mask.png"))
    assert set(np.unique(mask).tolist()) == {0, 255}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["preset"] == "line_pair" and meta["seed"] == 0 and meta["scene"]["sensor"]["photon_budget"] > 0
    # the files are the reference pair of seed 0
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair("line_pair", seed=0)
    assert np.array_equal(np.array(Image.open(out / "defect.png")), np.round(pair.defect[0].numpy() * 255).astype(np.uint8))
    assert np.array_equal(mask > 0, pair.mask.numpy())


def test_cli_unknown_preset_is_one_line(tmp_path):
    proc = run_cli("simulate", "preset=nope", f"out_dir={tmp_path / 'x'}", check=False)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "unknown simulator preset 'nope'" in err[0] and "line_pair" in err[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind,n", [("paper", 6), ("random", 5)])
def test_test_sets_are_written(tmp_path, kind, n):
    out = simulate_cli(_cfg(f"out_dir={tmp_path / 'o'}", f"test_set={kind}", f"n={n}"))
    files = sorted(p.name for p in (out / f"test_{kind}").iterdir())
    k = n // 2 * 2 if kind == "paper" else n
    assert files == sorted([f"{i:05d}.png" for i in range(k)] + [f"{i:05d}_mask.png" for i in range(k)] + ["meta.json"])
    meta = json.loads((out / f"test_{kind}" / "meta.json").read_text())
    assert len(meta["names"]) == k and meta["info"]["kind"] == kind
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temporary folder left
    mask = os.umask(0o022)
    os.umask(mask)  # the folder and its files get what the umask allows (not mkdtemp's 0700)
    assert stat.S_IMODE((out / f"test_{kind}").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((out / f"test_{kind}" / "meta.json").stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("overrides,match", [
    (["preset=nope"], "unknown simulator preset"),
    (["photon_budget=0"], "photon_budget"),
    (["photon_budget=-3"], "photon_budget"),
    (["test_set=crack"], "unknown test_set"),
    (["+overrides.optics.bogus=1"], "unknown optics parameter"),
])
def test_bad_input_writes_nothing(tmp_path, overrides, match):
    out = tmp_path / "o"
    with pytest.raises(InputError, match=match):
        simulate_cli(_cfg(f"out_dir={out}", *overrides))
    assert not out.exists()


def test_unwritable_out_dir(tmp_path):
    # tests run as root (chmod does not stop root): a path below a regular file cannot be created
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create output directory .*file/sub"):
        simulate_cli(_cfg(f"out_dir={blocker / 'sub'}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_overrides_change_the_scene(tmp_path):
    out = simulate_cli(_cfg(f"out_dir={tmp_path / 'o'}", "photon_budget=500", "+overrides.optics.sigma=0.5"))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["scene"]["sensor"]["photon_budget"] == 500 and meta["scene"]["optics"]["sigma"] == 0.5
