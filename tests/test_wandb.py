"""W&B for comparison (issue 13): an offline train, sample and eval job each write a run whose summary
holds the metrics (sortable columns), with the model / samples as artifacts, tags, a group with the
profile; a training job killed with -9 and rerun logs into the same run id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests._cli import BIN, run_cli
from tests._wandb import logged

# The embedded default (96x96), so the jobs' evaluation against the two references runs too.
TRAIN = ["generator=sinsemi", "profile=tiny", "logger=wandb", "evaluate=true", "segmentation=false",
         "experiment_name=wandb_check", "trainer.max_steps=12", "trainer.checkpoint_every=2"]
EVAL_KEYS = ("sifid_mean", "sifid_std", "lpips_mean", "lpips_std", "defect_count_mean", "defect_count_border_mean",
             "defect_count_interior_mean")


def _env(tmp: Path) -> dict:
    """Offline, not logged in (no key, an empty netrc), wandb's own files under ``tmp``."""
    (tmp / "netrc").write_text("")
    return {"WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_SILENT": "true", "NETRC": str(tmp / "netrc"),
            "WANDB_DIR": str(tmp / "wandb"), "WANDB_DATA_DIR": str(tmp / "wandb_data"),
            "WANDB_CACHE_DIR": str(tmp / "wandb_cache"), "WANDB_CONFIG_DIR": str(tmp / "wandb_config")}


def _runs(out_dir: Path) -> list[dict]:
    """The offline runs under ``out_dir/wandb``, oldest first, each as :func:`tests._wandb.logged` plus its folder."""
    return [{**logged(f), "dir": f.parent.name} for f in sorted(out_dir.glob("wandb/offline-run-*/run-*.wandb"))]


def _kill_mid_fit(run_dir: Path, env: dict) -> None:
    proc = subprocess.Popen([str(BIN / "sinsemi-train"), *TRAIN, f"hydra.run.dir={run_dir}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    t0 = time.time()
    while not (run_dir / "checkpoints" / "last.ckpt").exists() and proc.poll() is None and time.time() - t0 < 300:
        time.sleep(0.01)
    assert proc.poll() is None, "the fit ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _check_summary(run: dict, metrics: dict, keys=EVAL_KEYS) -> None:
    missing = [k for k in keys if k not in run["summary"]]
    assert not missing, f"summary lacks {missing}: {sorted(run['summary'])}"
    for k in keys:  # the columns are the job's own figures, not a copy of something else
        assert run["summary"][k] == metrics[k], (k, run["summary"][k], metrics[k])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str, dict]:
    """A tiny offline training job killed with -9 mid-fit, then rerun with the same command (a
    requeue): (run dir, the W&B run id stored at the first start, the env)."""
    tmp = tmp_path_factory.mktemp("wandb")
    env = _env(tmp)
    run_dir = tmp / "run"
    _kill_mid_fit(run_dir, env)
    run_id = json.loads((run_dir / "wandb_id.json").read_text())["train"]
    assert not (run_dir / "metrics.json").exists()
    run_cli("train", *TRAIN, f"hydra.run.dir={run_dir}", env=env)
    return run_dir, run_id, env


@pytest.mark.slow  # ~30 s; the default suite's W&B check is tests/test_wandb_comparison.py (an offline sweep)
def test_offline_train_run_compares_and_resumes_after_kill_9(trained):
    """The issue's check on a training job (evaluated, as in the experiment sweeps)."""
    run_dir, run_id, _ = trained
    first, train = _runs(run_dir)  # killed + resumed = two offline folders of one run id
    assert first["dir"].endswith(run_id) and train["dir"].endswith(run_id) and first["dir"] != train["dir"]
    assert train["run_id"] == run_id and first["run_id"] in (run_id, None)  # None: killed before it was flushed
    assert train["group"] == "wandb_check-tiny" and train["job_type"] == "train"
    assert {"sinsemi", "tiny"} <= set(train["tags"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _check_summary(train, metrics, EVAL_KEYS + ("fit_seconds", "n_samples"))
    assert train["artifacts"][f"model-{run_id}"] == {"type": "model", "files": ["generator.json", "state.pt"]}
    assert train["artifacts"][f"samples-{run_id}"] == {"type": "samples", "files": ["grid.png", "samples.npz"]}
    assert {"train/loss", "samples/grid", "eval/samples", "defects/heatmap", "defects/eval_grid"} <= train["keys"]
    per_scale = {k for k in train["keys"] if k.startswith("train/loss_s")}
    assert per_scale and all(k.removeprefix("train/loss_s").isdigit() for k in per_scale), train["keys"]
    assert train["summary"]["trainer/global_step"] == 11  # the resumed fit went on to max_steps


@pytest.mark.slow  # two more jobs (~50 s of CPU); the train job above is the default-suite check
def test_offline_sample_and_eval_runs_compare(trained, tmp_path):
    run_dir, run_id, env = trained
    # sample (an ablation point): its own run in the same group, evaluated, its samples as an artifact
    out = tmp_path / "resample"
    run_cli("sample", f"run_dir={run_dir}", "n=4", "evaluate=true", "experiment_name=wandb_check", f"out_dir={out}",
            "logger=wandb", env=env)
    (sample,) = _runs(out)
    assert sample["job_type"] == "sample" and sample["group"] == "wandb_check-tiny" and sample["run_id"] != run_id
    assert {"sinsemi", "tiny"} <= set(sample["tags"])
    _check_summary(sample, json.loads((out / "metrics.json").read_text()), EVAL_KEYS + ("sample_seconds",))
    assert sample["artifacts"][f"samples-{sample['run_id']}"]["files"] == ["grid.png", "samples.npz"]

    # eval of the training run with the U-Net: its epochs on the run, the run's model and samples as artifacts
    ev = tmp_path / "eval"
    run_cli("eval", f"samples_dir={run_dir}", f"out_dir={ev}", "profile=tiny", "experiment_name=wandb_check",
            "segmentation=true", env=env)
    (evr,) = _runs(ev)
    assert evr["job_type"] == "eval" and evr["group"] == "wandb_check-tiny" and {"sinsemi", "tiny"} <= set(evr["tags"])
    _check_summary(evr, json.loads((ev / "metrics.json").read_text()), EVAL_KEYS + ("iou_mean",))
    eid = evr["run_id"]
    assert evr["artifacts"][f"model-{eid}"]["files"] == ["generator.json", "state.pt"]
    assert evr["artifacts"][f"samples-{eid}"]["files"] == ["grid.png", "samples.npz"]
    assert {"seg/train_loss", "seg/epoch", "eval/samples"} <= evr["keys"], evr["keys"]
