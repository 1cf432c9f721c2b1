"""W&B: an offline run is written under the run dir with the keys a dashboard compares (issue 4)."""

from __future__ import annotations

import json

from tests._cli import run_cli
from tests._wandb import logged


def test_offline_run_has_losses_grid_metrics_table_and_heatmap(tmp_path):
    run = tmp_path / "run"
    # The embedded default (96x96) so the job's evaluation against the two references runs too.
    run_cli("train", "generator=sinsemi", "profile=tiny", "logger=wandb", "evaluate=true", "segmentation=false",
            "experiment_name=wandb_check", f"hydra.run.dir={run}",
            env={"WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_SILENT": "true"})
    files = sorted(run.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one offline run under {run}/wandb, found {files}"
    got = logged(files[0])
    assert got["group"] == "wandb_check" and got["job_type"] == "train"
    expected = {"train/loss", "samples/grid", "metrics", "defects/heatmap", "defects/eval_grid"}
    assert expected <= got["keys"], expected - got["keys"]
    # the per-scale losses (a tiny run draws only some of the scales)
    per_scale = {k for k in got["keys"] if k.startswith("train/loss_s")}
    assert per_scale and all(k.removeprefix("train/loss_s").isdigit() for k in per_scale), got["keys"]
    assert json.loads((run / "metrics.json").read_text())["sifid_mean"] >= 0
