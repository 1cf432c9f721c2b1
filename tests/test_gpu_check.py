"""`make gpu-check DRY=1`: the prepared GPU check runs CPU-sized, so it cannot rot without a GPU."""

import json

import pytest
import torch

from sinsemi.bench import gpu_check


@pytest.mark.slow  # ~30 s on 2 cores (a DDP pair among its sections); `make test-slow`, and make gpu-check on a GPU
def test_dry_gpu_check_runs_every_section(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.main(["--dry"]) == 0
    out = json.loads((tmp_path / "gpu_check.json").read_text())
    assert out["dry"] is True and out["train"] and out["unet"]["images_per_s"] > 0
    kinds = {(r["steps"], r["guidance"]) for r in out["sample"]}
    assert kinds == {(2, 0.0), (2, 1.0), (1, 0.0), (1, 1.0)}
    assert all(r["images_per_s"] > 0 and r["nfe"] == r["steps"] * 3 for r in out["sample"])
    ddp = out["ddp"]  # DRY: 2 gloo processes through the real CLI
    assert ddp["accelerator"] == "cpu" and ddp["one"]["fit_seconds"] > 0 and ddp["two"]["fit_seconds"] > 0
    assert (tmp_path / "gpu_check_runs" / "ddp_2" / "model" / "generator.json").exists()
    assert "DRY" in capsys.readouterr().out


def test_without_a_gpu_the_real_check_says_so(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("DRY", raising=False)
    assert gpu_check.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
