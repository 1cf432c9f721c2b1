"""The jobs layer's own pieces: composing configs outside a CLI, and a trained run read once."""

from __future__ import annotations

import json

import pytest

from sinsemi.errors import InputError
from sinsemi.jobs.config import compose, initialized, to_plain
from sinsemi.jobs.sample import TrainedRun


def test_compose_outside_a_cli_and_inside_an_initialised_hydra():
    alone = to_plain(compose("eval", ["profile=tiny", "segmentation=false"]))
    with initialized():  # e.g. report.status composing many sweep points in one context
        inside = to_plain(compose("eval", ["profile=tiny", "segmentation=false"]))
    assert alone == inside and alone["profile_name"] == "tiny" and alone["segmentation"] is False


def _run(tmp_path, sampler: dict, generator: str = "sinsemi"):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(json.dumps({"generator": {"name": generator}, "profile_name": "tiny", "sampler": sampler}))
    (run / "model" / "generator.json").write_text(json.dumps({"name": generator}))
    return run


def test_a_trained_run_is_read_once_until_its_files_change(tmp_path):
    run = _run(tmp_path, {"steps": 5})
    first = TrainedRun.read(run)
    assert (first.generator, first.profile, first.sampler) == ("sinsemi", "tiny", {"steps": 5})
    assert TrainedRun.read(run) is first  # the argv hook and the job share one read
    _run(tmp_path, {"steps": 50, "kind": "ode"})  # another size: read again
    assert TrainedRun.read(run).sampler == {"steps": 50, "kind": "ode"}
    (run / "model" / "generator.json").write_text(json.dumps({"name": "gpnn"}))
    with pytest.raises(InputError, match="inconsistent"):
        TrainedRun.read(run)


def test_the_command_line_wins_over_the_run_sampler(tmp_path):
    run = TrainedRun.read(_run(tmp_path, {"steps": 5, "kind": "bridge"}))
    asked = {"steps": 50, "kind": "ode", "guidance": 0.0}
    assert run.sampler_for(asked, set()) == {"steps": 5, "kind": "bridge", "guidance": 0.0}
    assert run.sampler_for(asked, {"sampler.kind"}) == {"steps": 5, "kind": "ode", "guidance": 0.0}
    assert run.sampler_for(asked, {"sampler"}) == asked


def test_a_run_made_with_other_unet_settings_is_re_evaluated_not_refitted(tmp_path):
    """Resuming a sweep after a U-Net setting changed (conf/downstream/<profile>.yaml): each run keeps its
    model and samples and gets its evaluation redone; with the same settings it is skipped."""
    from sinsemi.jobs.train import train_run

    base = ["generator=gpnn", "profile=tiny", "logger=none", "evaluate=true", "segmentation=true", "test_set.random.n=0"]
    run = tmp_path / "run"
    first = train_run(compose("train", base), run)
    kept = {p: p.stat().st_mtime_ns for p in [*(run / "model").iterdir(), run / "samples" / "samples.npz"]}
    assert first["seg_settings"]["epochs"] == 1
    again = train_run(compose("train", [*base, "downstream.epochs=2"]), run)
    assert again["seg_settings"]["epochs"] == 2 and again["fit_seconds"] == first["fit_seconds"]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    stamp = (run / "metrics.json").stat().st_mtime_ns
    assert train_run(compose("train", [*base, "downstream.epochs=2"]), run)["seg_settings"]["epochs"] == 2
    assert (run / "metrics.json").stat().st_mtime_ns == stamp
