"""The job's logger (sinsemi.tracking.loggers): W&B mode, group, tags, run id; CSV / TensorBoard curves on
disk; `make wandb-sync` finding offline runs and failing when an upload fails."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sinsemi.tracking.loggers import (artifacts_wanted, logger_group, logger_tags, make_logger, wandb_api_key_source,
                                 wandb_mode)
from sinsemi.errors import InputError

KEY = "k" * 40


def _compose(root: str, *overrides: str):

    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return compose(root, overrides=list(overrides))


@pytest.fixture
def no_login(tmp_path, monkeypatch):
    """No key, an empty netrc, no WANDB_MODE: what a user who never ran `wandb login` has."""
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_online_only_when_logged_in_and_wandb_mode_wins(no_login, monkeypatch):
    assert wandb_api_key_source() is None and wandb_mode(None).mode == "offline"
    assert "not logged in" in wandb_mode(None).why
    no_login.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")  # as `wandb login` writes it
    assert wandb_api_key_source() == str(no_login)
    assert wandb_mode(None) == wandb_mode(None) and wandb_mode(None).mode == "online"
    assert wandb_mode("offline").mode == "offline"  # logger.mode set
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("online").mode == "disabled"  # the environment wins
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")  # a private server: api.wandb.ai's entry is not for it
    assert wandb_mode(None).mode == "offline"
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert wandb_api_key_source() == "WANDB_API_KEY" and wandb_mode(None).mode == "online"


def test_group_is_experiment_or_generator_plus_profile_and_tags_come_from_config():
    train = _compose("train", "generator=gpnn", "profile=tiny")
    assert logger_group(train) == "gpnn-tiny" and logger_tags(train) == ["gpnn", "tiny"]
    assert logger_group(_compose("train", "profile=tiny", "experiment=table2")) == "compare-tiny"  # tables 1-3: one sweep
    assert logger_group(_compose("train", "logger.group=mine")) == "mine"
    sample = _compose("sample", "run_dir=/nonexistent", "generator=singan", "profile=quick")
    assert logger_group(sample) == "singan-quick" and logger_tags(sample) == ["singan", "quick"]
    ev = _compose("eval", "profile=paper")
    assert logger_group(ev, "sinddm") == "sinddm-paper" and logger_tags(ev, ("sinddm",)) == ["paper", "sinddm"]
    assert logger_tags(_compose("train", "profile=tiny", "tags=[a,tiny,b]"), ("a",)) == ["a", "tiny", "b"]


@pytest.mark.parametrize("override,match", [("tags=" + "x" * 65, "tags must be a list"),
                                            ("tags=[" + "x" * 65 + "]", "longer than 64"),
                                            ("logger.artifacts=yes", "logger.artifacts must be")])
def test_bad_logger_settings_are_one_clear_error(tmp_path, no_login, override, match):
    cfg = _compose("train", "profile=tiny", override)
    with pytest.raises(InputError, match=match):
        make_logger(cfg, tmp_path / "run", job_type="train")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_artifacts_default_to_jobs_that_evaluate():
    cfg = _compose("train", "profile=tiny")
    assert artifacts_wanted(cfg, evaluates=True) and not artifacts_wanted(cfg, evaluates=False)
    assert artifacts_wanted(_compose("train", "logger.artifacts=true"), evaluates=False)
    assert not artifacts_wanted(_compose("train", "logger.artifacts=false"), evaluates=True)


def test_run_id_is_stored_once_per_job_type(tmp_path):
    from sinsemi.runs import MODEL_ARTIFACTS, WANDB_ID, logger_run_id

    ids = iter(["aaaa1111", "bbbb2222", "cccc3333"])
    assert logger_run_id(tmp_path, "train", lambda: next(ids)) == "aaaa1111"
    assert logger_run_id(tmp_path, "train", lambda: next(ids)) == "aaaa1111"  # the rerun resumes it
    assert logger_run_id(tmp_path, "eval", lambda: next(ids)) == "bbbb2222"  # sinsemi-eval into a run dir: its own run
    assert json.loads((tmp_path / WANDB_ID).read_text()) == {"train": "aaaa1111", "eval": "bbbb2222"}
    assert WANDB_ID in MODEL_ARTIFACTS  # force=true (other inputs) starts a new W&B run too
    (tmp_path / WANDB_ID).write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        logger_run_id(tmp_path, "train", lambda: next(ids))


def test_wandb_logger_gets_group_tags_and_the_stored_id(tmp_path, no_login, monkeypatch):
    """The WandbLogger as built (no run is started: the experiment is lazy)."""
    cfg = _compose("train", "generator=gpnn", "profile=tiny", "logger=wandb", "experiment_name=exp")
    lg = make_logger(cfg, tmp_path / "run", job_type="train")
    kw = lg._wandb_init
    stored = json.loads((tmp_path / "run" / "wandb_id.json").read_text())["train"]
    assert (kw["id"], kw["resume"], kw["mode"], kw["group"], kw["tags"]) == (stored, "allow", "offline", "exp-tiny", ["gpnn", "tiny"])
    assert kw["name"] == "gpnn-run" and kw["job_type"] == "train" and kw["dir"] == str(tmp_path / "run")
    assert make_logger(cfg, tmp_path / "run", job_type="train")._wandb_init["id"] == stored
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert make_logger(cfg, tmp_path / "run2", job_type="train") is None


@pytest.mark.parametrize("kind,pattern", [("csv", "csv/version_0/metrics.csv"),
                                          ("tensorboard", "tensorboard/version_0/events.out.tfevents.*")])
def test_csv_and_tensorboard_curves_on_disk_after_a_tiny_fit(tmp_path, kind, pattern):
    """logger=csv|tensorboard: Lightning's logger in the run dir, the fit's losses written there."""
    from sinsemi.jobs.train import train_run as train
    from tests._cli import write_tiny_png
    from tests.conftest import make_tiny_image

    image = write_tiny_png(tmp_path / "tiny.png", make_tiny_image())
    run_dir = tmp_path / "run"
    cfg = _compose("train", "generator=sinsemi", "profile=tiny", f"logger={kind}", f"data.image={image}")
    train(cfg, run_dir)
    (curves,) = run_dir.glob(pattern)
    if kind == "csv":
        header = curves.read_text().splitlines()[0].split(",")
        assert {"step", "train/loss"} <= set(header), header
        assert len(curves.read_text().splitlines()) > 3  # a row per logged step
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(curves.parent))
        acc.Reload()
        assert "train/loss" in acc.Tags()["scalars"] and len(acc.Scalars("train/loss")) > 3


# ----------------------------------------------------------------------------- make wandb-sync
def _fake_offline_run(parent: Path, name: str, synced: bool = False) -> Path:
    d = parent / "wandb" / f"offline-run-{name}"
    d.mkdir(parents=True)
    (d / f"run-{name[-8:]}.wandb").write_bytes(b":W&B")
    if synced:
        (d / f"run-{name[-8:]}.wandb.synced").write_text("")
    return d


def test_wandb_sync_finds_every_offline_run_and_fails_when_one_does_not_upload(tmp_path, no_login, monkeypatch, capsys):
    from sinsemi.cli import wandb_sync as ws

    a = _fake_offline_run(tmp_path / "outputs" / "compare_quick" / "0", "20260101_000000-aaaa1111")
    b = _fake_offline_run(tmp_path / "elsewhere" / "deep" / "run", "20260102_000000-bbbb2222")
    c = _fake_offline_run(tmp_path / "outputs" / "x", "20260103_000000-cccc3333", synced=True)
    (a.parent / "latest-run").symlink_to(a)  # wandb's link: not a second run
    assert ws.offline_runs(tmp_path) == [a, b, c]
    monkeypatch.setenv("NETRC", str(no_login))
    assert ws.main([str(tmp_path)]) == 2 and "not logged in" in capsys.readouterr().err
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    calls = []

    def uploads_only_a(cmd):  # wandb sync exits 0 whether or not an upload failed
        calls.append(cmd)
        (a / "run-aaaa1111.wandb.synced").write_text("")
        return 0

    rep = ws.sync([tmp_path], runner=uploads_only_a)
    assert calls == [ws.wandb_sync_command([a, b])]  # one call, oldest first, the synced one left out
    assert (rep.synced, rep.failed, rep.skipped) == ([a], [b], [c])
    with pytest.raises(InputError, match="not a directory"):
        ws.offline_runs(tmp_path / "missing")


class _Refuse(BaseHTTPRequestHandler):
    def _answer(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"errors": [{"message": "bad key"}]}')

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


def test_make_wandb_sync_exits_non_zero_when_the_server_refuses(tmp_path, monkeypatch):
    """The real `wandb sync` against a local server that refuses the key: wandb exits 0, the target fails."""
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DATA_DIR": str(tmp_path / "d"),
           "WANDB_CACHE_DIR": str(tmp_path / "c"), "WANDB_CONFIG_DIR": str(tmp_path / "cfg")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code = (f"import wandb; r = wandb.init(project='p', dir={str(tmp_path / 'out')!r}, mode='offline'); "
            "r.log({'x': 1.0}); r.finish()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    server = HTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        proc = subprocess.run([sys.executable, "-m", "sinsemi.cli.wandb_sync", str(tmp_path / "out"), "--timeout", "120"],
                              capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 offline W&B runs" in proc.stdout and "did not upload" in proc.stderr


def test_train_refuses_a_bad_tag_before_writing_anything(tmp_path):
    from sinsemi.jobs.train import train_run as train

    cfg = _compose("train", "generator=gpnn", "profile=tiny", "logger=none", "tags=[" + "x" * 65 + "]")
    with pytest.raises(InputError, match="longer than 64"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_jobs_on_a_sweeps_run_take_its_experiment_and_name_generator_profile_sampler(tmp_path):
    """An energy re-sampling or an eval of a sweep's run (no experiment_name given) is in the sweep's
    group; the eval run's config names the run's generator, profile and the folder's sampler."""
    from sinsemi.data.io import save_bundle
    from sinsemi.tracking.loggers import comparison_config, row_tag
    import torch

    run = tmp_path / "compare_tiny" / "sinsemi_seed0"
    (run / "model").mkdir(parents=True)
    (run / "model" / "generator.json").write_text(json.dumps({"name": "sinsemi"}))
    (run / "config.yaml").write_text("experiment_name: mine\nprofile_name: tiny\ngenerator: {name: sinsemi}\n"
                                     "sampler: {steps: 3, guidance: 0.0}\n")
    folder = run / "samples" / "steps3_guidance1.0_n4"
    save_bundle(torch.zeros(1, 1, 4, 4), folder / "samples.npz", sampler={"steps": 3, "guidance": 1.0})
    sample = _compose("sample", f"run_dir={run}", "generator=sinsemi", "profile=tiny")
    assert logger_group(sample) == "mine-tiny"
    ev = _compose("eval", f"samples_dir={folder}", "profile=tiny")
    assert logger_group(ev, folder.name) == "mine-tiny"
    cfg = comparison_config(ev, folder.name)
    assert cfg["generator"] == {"name": "sinsemi"} and cfg["profile"] == "tiny" and cfg["experiment_name"] == "mine"
    assert cfg["sampler"] == {"steps": 3, "guidance": 1.0}  # the folder's own, not the run's default
    assert row_tag(ev, folder.name) == "sinsemi"
    ref = _compose("eval", "mode=reference", "profile=tiny")
    assert comparison_config(ref, "two references")["generator"] == {"name": "two references"}
    assert logger_group(ref, "two references") == "two references-tiny"  # nothing to derive: experiment_name= is passed
