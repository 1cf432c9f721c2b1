"""Equal compute and budget curves: snapshots of a fit are the fit stopped there; the budget points
of a sweep; the calibration's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sinsemi.generators.base import Runtime, build_generator, load_generator, snapshot_steps
from sinsemi.jobs.config import compose, to_plain
from tests._cli import write_tiny_png


def test_snapshot_steps():
    assert snapshot_steps([0.25, 0.5], 8) == [2, 4]
    assert snapshot_steps([0.5, 0.5, 1.0, 0.0], 10) == [5]  # duplicates, the end and the start left out
    assert snapshot_steps([0.01], 10) == []  # rounds to step 0: nothing trained yet


def _params(name: str) -> tuple[dict, dict]:
    cfg = to_plain(compose("train", [f"generator={name}", "profile=tiny", "logger=none"]))
    params = dict(cfg["generator"])
    params.pop("name")
    return params, cfg["sampler"] or {}


def _weights(gen) -> dict:
    return {k: v.clone() for k, v in gen.net.state_dict().items()}


@pytest.mark.parametrize("name", ["sinsemi", "sinfusion"])
def test_a_snapshot_is_the_fit_stopped_there(tmp_path, tiny_image, name):
    """The model kept at step k of an 8-step fit has the weights of the same fit run for k steps (the
    lr schedules of these tiny recipes do not depend on the budget), and loads and samples."""
    params, sampler = _params(name)
    long = build_generator(name, params, Runtime(progress=False, max_steps=8, snapshots=(0.25, 0.5)))
    long.fit(tiny_image, seed=0, out_dir=tmp_path / "long")
    assert sorted(p.name for p in (tmp_path / "long" / "snapshots").iterdir()) == ["step2", "step4"]
    short = build_generator(name, params, Runtime(progress=False, max_steps=4))
    short.fit(tiny_image, seed=0, out_dir=tmp_path / "short")
    snap = load_generator(tmp_path / "long" / "snapshots" / "step4", runtime=Runtime(progress=False))
    want, got, final = _weights(short), _weights(snap), _weights(long)
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert not all(torch.equal(final[k], got[k]) for k in final)  # the final model trained on
    assert snap.sample([0], **sampler).samples.shape == (1, *tiny_image.shape)


def test_bad_snapshot_fractions_are_refused_before_work(tmp_path, tiny_image):
    from sinsemi.errors import InputError
    from sinsemi.jobs.train import train_run

    png = write_tiny_png(tmp_path / "tiny.png", tiny_image)
    for bad in ("[1.5]", "0.5", "[.inf]"):
        cfg = compose("train", ["generator=sinfusion", "profile=tiny", "logger=none", f"data.image={png}",
                                f"trainer.snapshots={bad}"])
        with pytest.raises(InputError, match="trainer.snapshots"):
            train_run(cfg, tmp_path / "run")
        assert not (tmp_path / "run").exists()


def test_a_row_name_cannot_be_a_path(tmp_path, tiny_image):
    from sinsemi.errors import InputError
    from sinsemi.jobs.train import train_run

    png = write_tiny_png(tmp_path / "tiny.png", tiny_image)
    for bad in ("../x", "a/b", ""):
        cfg = compose("train", ["generator=gpnn", "profile=tiny", "logger=none", f"data.image={png}", f"row='{bad}'"])
        with pytest.raises(InputError, match="row="):
            train_run(cfg, tmp_path / "run")
        assert not (tmp_path / "run").exists()


def test_budget_points_of_a_sweep(tmp_path, tiny_image):
    """A step-based row's points come from its snapshots; a GAN's from fits of their own with that share
    of the iterations; every point evaluated (and read back on a rerun, not redone)."""
    from sinsemi.jobs.budget import budget_points
    from sinsemi.jobs.train import train_run
    from sinsemi.report.budget import render

    png = write_tiny_png(tmp_path / "tiny.png", tiny_image)
    clean = tiny_image.clone()
    clean[:, 14:18] = tiny_image[:, 2:6]  # the rows of the bridge from a defect-free band
    clean_png = write_tiny_png(tmp_path / "clean.png", clean)
    sweep = tmp_path / "sweep"
    for name, budget in (("sinfusion", "trainer.max_steps=8"), ("singan", "generator.niter=4")):
        cfg = compose("train", [f"generator={name}", "profile=tiny", "logger=none", f"data.image={png}",
                                "evaluate=true", "allow_random_backbone=true", budget, "trainer.snapshots=[0.25,0.5]",
                                f"reference.defect={png}", f"reference.clean={clean_png}"])
        train_run(cfg, sweep / f"{name}_seed0")
    points = budget_points(sweep)
    got = {(p["row"], p["fraction"]): p for p in points}
    assert set(got) == {(g, f) for g in ("sinfusion", "singan") for f in (0.25, 0.5, 1.0)}
    assert [got[("sinfusion", f)]["iterations"] for f in (0.25, 0.5, 1.0)] == [2, 4, 8]
    assert [got[("singan", f)]["iterations"] for f in (0.25, 0.5, 1.0)] == [1, 2, 4]
    assert all("sifid_mean" in p and "defect_count_mean" in p for p in points)
    assert (sweep / "budget" / "singan_seed0_f0.25" / "metrics.json").exists()
    stamp = (sweep / "sinfusion_seed0" / "snapshots" / "step2" / "eval" / "metrics.json").stat().st_mtime_ns
    budget_points(sweep)  # a rerun reads the finished points back
    assert (sweep / "sinfusion_seed0" / "snapshots" / "step2" / "eval" / "metrics.json").stat().st_mtime_ns == stamp
    md, cs = render(points, "test pair", "test CPU")
    assert md.count("| sinfusion |") == 3 and "Image: test pair. CPU: test CPU." in md


def test_calibration_arithmetic():
    from sinsemi.bench.budget import table

    rows = [{"generator": "sinsemi", "iterations": 1000, "k": (1, 2), "cpu_per_it": 0.2, "wall_per_it": 0.1},
            {"generator": "singan", "iterations": 300, "k": (1, 2), "cpu_per_it": 4.0, "wall_per_it": 2.0,
             "n_samples": 64, "cpu_per_sample": 1.5}]
    md = table(rows, "standard", "x.png")
    assert "= 200 CPU s" in md  # 1000 x 0.2
    assert "| singan | 4.000 | 2.000 | 300 | 50 | 6.00 | 1.6 (N=64) |" in md  # 200 / 4 iterations; 300 x 4 / 200 now; 64 x 1.5 s
