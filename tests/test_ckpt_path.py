"""ckpt_path: 'last' (the run dir's own checkpoint), null (fresh) or a checkpoint file, which a fit
starts from while its run dir has no checkpoint of its own; bad values fail before any work."""

from __future__ import annotations

import logging

import pytest
import torch
from hydra import compose, initialize_config_module

from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, resume_source
from sinsemi.validation import check_ckpt_path


def test_check_ckpt_path(tmp_path):
    f = tmp_path / "last.ckpt"
    f.write_bytes(b"x")
    check_ckpt_path("last", "sinsemi")
    check_ckpt_path(None, "gpnn")
    check_ckpt_path(str(f), "sinsemi")
    check_ckpt_path(str(f), "singan")
    with pytest.raises(InputError, match=r"ckpt_path=.*nope.ckpt: no such file"):
        check_ckpt_path(str(tmp_path / "nope.ckpt"), "sinsemi")
    with pytest.raises(InputError, match="is a directory: name the checkpoint file"):
        check_ckpt_path(str(tmp_path), "sinsemi")
    with pytest.raises(InputError, match="generator gpdm is training-free"):
        check_ckpt_path(str(f), "gpdm")


def test_resume_source(tmp_path):
    own, other = tmp_path / "own.pt", tmp_path / "other.pt"
    other.write_bytes(b"x")
    assert resume_source(own, Runtime()) is None
    assert resume_source(own, Runtime(resume_from=str(other))) == other
    assert resume_source(own, Runtime(resume=False, resume_from=str(other))) is None
    own.write_bytes(b"x")
    assert resume_source(own, Runtime(resume_from=str(other))) == own  # the run's own progress wins


def test_gan_checkpoint_store_reads_the_file_then_its_own(tmp_path):
    from sinsemi.generators.common.gan import CheckpointStore, fingerprint

    fp = fingerprint({"a": 1}, 0, 4, torch.zeros(1, 4, 4))
    CheckpointStore(tmp_path / "a", "singan").save({"fingerprint": fp, "stage": 1})
    src = tmp_path / "a" / "checkpoints" / "last.pt"
    store = CheckpointStore(tmp_path / "b", "singan", Runtime(resume_from=str(src)))
    assert store.load(fp)["stage"] == 1
    store.save({"fingerprint": fp, "stage": 2})
    assert store.load(fp)["stage"] == 2
    with pytest.raises(InputError, match="belongs to a 'singan' generator, not 'consingan'"):
        CheckpointStore(tmp_path / "c", "consingan", Runtime(resume_from=str(src))).load(fp)
    assert CheckpointStore(tmp_path / "a", "singan", Runtime(resume=False)).load(fp) is None


def _cfg(*overrides: str):
    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return compose("train", overrides=["profile=tiny", "logger=none", *overrides])


def test_train_starts_from_a_checkpoint_file(tmp_path, caplog, monkeypatch):
    """sinsemi-train ckpt_path=<another run's last.ckpt>: only the missing steps are trained, and
    the result equals an uninterrupted run."""
    from sinsemi.jobs.train import train_run as train
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    train(_cfg("trainer.max_steps=3"), tmp_path / "a")
    src = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert torch.load(src, map_location="cpu", weights_only=True)["global_step"] == 3
    full = train(_cfg("trainer.max_steps=6"), tmp_path / "full")
    steps = []
    inner = SinSEMIModule.training_step

    def counting(self, batch, batch_idx):
        steps.append(self.global_step)
        return inner(self, batch, batch_idx)

    monkeypatch.setattr(SinSEMIModule, "training_step", counting)
    caplog.set_level(logging.INFO, logger="sinsemi")
    resumed = train(_cfg("trainer.max_steps=6", f"ckpt_path={src}"), tmp_path / "b")
    assert steps == [3, 4, 5]
    assert f"resuming SinSEMI from {src}" in caplog.text
    a = torch.load(tmp_path / "full" / "model" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model" / "state.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
    assert resumed["fit_seconds"] is not None and full["n_samples"] == resumed["n_samples"]


def test_train_refuses_a_missing_file_before_any_work(tmp_path):
    from sinsemi.jobs.train import train_run as train

    with pytest.raises(InputError, match="no such file"):
        train(_cfg(f"ckpt_path={tmp_path / 'missing.ckpt'}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
