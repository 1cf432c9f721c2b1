"""W&B as one comparison (issue 24): an offline ``experiment=table2`` sweep (tiny profile), its
two-reference row, a SinSEMI+energy re-sampling (guidance 1.0) of the sweep's SinSEMI run and an
evaluation of that re-sampled folder (slow: ``make test-slow``) all log into the sweep's one group,
every evaluated run's summary holds the ratios to the two-reference row, every run's config names its
generator, profile and sampler, and a folder named ``..._guidance1.0_...`` keeps its whole name (no
``Path.stem`` cut)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from tests._cli import BIN, run_cli
from tests._wandb import logged
from tests.test_wandb import _env

PROFILE = "tiny"
SWEEP = ["experiment=table2", f"profile={PROFILE}", "generator=gpnn,sinsemi", "seed=0", "logger=wandb",
         "trainer.max_steps=4"]
RATIOS = ("sifid_ratio", "lpips_ratio")


def _experiment_name() -> str:
    """What ``experiment=table2`` names its sweep (the Makefile passes it to the two-reference row)."""
    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return str(compose("train", overrides=["experiment=table2"]).experiment_name)


def _runs(root: Path) -> dict[Path, dict]:
    """Every offline W&B run under ``root``: the folder its job wrote into -> :func:`tests._wandb.logged`."""
    return {f.parents[2]: logged(f) for f in sorted(root.glob("**/wandb/offline-run-*/run-*.wandb"))}


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> dict:
    """The sweep and the two-reference row (side by side), then the energy re-sampling of the
    sweep's SinSEMI run (no experiment_name given: it is the run's)."""
    tmp = tmp_path_factory.mktemp("comparison")
    env = _env(tmp)
    experiment = _experiment_name()
    ref_dir, out = tmp / "reference", tmp / "out"
    ref = subprocess.Popen([str(BIN / "sinsemi-eval"), "mode=reference", f"profile={PROFILE}", f"out_dir={ref_dir}",
                            f"experiment_name={experiment}", "segmentation=false"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    try:
        run_cli("train", *SWEEP, f"paths.output_dir={out}", env=env)
    finally:
        log = ref.communicate(timeout=600)[0]
    assert ref.returncode == 0, log[-3000:]
    (sweep,) = out.glob("*/experiment.json")
    sinsemi = sweep.parent / "sinsemi_seed0"
    run_cli("sample", f"run_dir={sinsemi}", "sampler.guidance=1.0", "evaluate=true", "segmentation=false", env=env)
    (folder,) = [p for p in (sinsemi / "samples").iterdir() if "guidance1.0" in p.name]
    return {"runs": _runs(tmp), "experiment": experiment, "reference": ref_dir, "energy": folder, "sweep": sweep.parent,
            "env": env, "tmp": tmp}


def test_every_row_of_the_sweep_is_in_one_group(comparison):
    runs = comparison["runs"]
    job_types = sorted(r["job_type"] for r in runs.values())
    assert job_types == ["eval", "sample", "train", "train"], job_types
    groups = {r["group"] for r in runs.values()}
    assert groups == {f"{comparison['experiment']}-{PROFILE}"}, groups
    assert {r["config"]["experiment_name"] for r in runs.values()} == {comparison["experiment"]}


def test_every_evaluated_run_carries_the_ratios_of_its_metrics_json(comparison):
    for folder, run in comparison["runs"].items():
        metrics = json.loads((folder / "metrics.json").read_text())
        for key in RATIOS:
            assert key in run["summary"], (folder.name, key, sorted(run["summary"]))
            assert run["summary"][key] == metrics[key] is not None, (folder.name, key)
    ref = comparison["runs"][comparison["reference"]]
    assert all(ref["summary"][k] == 1.0 for k in RATIOS)  # the row everything is divided by


def test_every_run_names_its_generator_profile_and_sampler(comparison):
    runs = comparison["runs"]
    for folder, run in runs.items():
        assert {"generator", "profile", "sampler"} <= set(run["config"]), (folder.name, sorted(run["config"]))
        assert run["config"]["profile"] == PROFILE
    by_folder = {folder: run["config"] for folder, run in runs.items()}
    assert by_folder[comparison["sweep"] / "gpnn_seed0"]["generator"]["name"] == "gpnn"
    assert by_folder[comparison["reference"]]["generator"]["name"] == "two references"
    assert by_folder[comparison["energy"]]["generator"]["name"] == "sinsemi"
    assert by_folder[comparison["energy"]]["sampler"]["guidance"] == 1.0
    assert by_folder[comparison["sweep"] / "sinsemi_seed0"]["sampler"]["guidance"] != 1.0


def test_every_trained_run_shows_its_overview(comparison):
    """The picture a user reads first (training image + samples + title) is written and logged."""
    trained = {folder: run for folder, run in comparison["runs"].items() if run["job_type"] == "train"}
    for folder, run in trained.items():
        assert (folder / "overview.png").is_file() and "samples/overview" in run["keys"], folder.name


def test_a_folder_named_with_1_0_keeps_its_whole_name(comparison):
    folder = comparison["energy"].name
    assert comparison["runs"][comparison["energy"]]["name"].endswith(folder)  # the energy row's run
    from sinsemi.evaluation import resolve_samples

    assert resolve_samples(comparison["energy"]).name == folder  # an eval's row label: not cut at the dot of "1.0"


@pytest.mark.slow  # one more eval job (~15-25 s); the checks above are the default suite's
def test_an_eval_of_the_re_sampled_folder_is_a_row_of_the_comparison(comparison):
    folder, out = comparison["energy"], comparison["tmp"] / "eval"
    run_cli("eval", f"samples_dir={folder}", f"out_dir={out}", f"profile={PROFILE}", "segmentation=false",
            env=comparison["env"])
    (ev,) = _runs(out).values()
    assert ev["job_type"] == "eval" and ev["group"] == f"{comparison['experiment']}-{PROFILE}"
    assert ev["name"].startswith(folder.name), (ev["name"], folder.name)  # not cut at the dot of "1.0"
    assert json.loads((out / "metrics.json").read_text())["name"] == folder.name  # the table row too
    assert "sinsemi" in ev["tags"] and all(len(t) <= 64 for t in ev["tags"])  # tagged by the generator
    cfg = ev["config"]
    assert cfg["generator"]["name"] == "sinsemi" and cfg["profile"] == PROFILE
    assert cfg["sampler"]["guidance"] == 1.0  # the folder's sampler, not the run's default
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(ev["summary"][k] == metrics[k] is not None for k in RATIOS)
