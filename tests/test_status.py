"""The collect step (``make status``) on a fake sweep dir: planned runs read back from multirun.yaml,
each one finished / failed / started / missing by the sweeps' own skip rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from sinsemi import runs
from sinsemi.jobs.config import initialized
from sinsemi.jobs.sweep import JOBS_DIR
from sinsemi.errors import InputError
from sinsemi.report import status as S

CLI = ["experiment=table2", "profile=quick", "launcher=local", "generator=sinsemi,gpnn,gpdm,singan", "seed=0,1"]


def fake_sweep(sweep: Path, cli: list[str]) -> None:
    """A multirun.yaml as Hydra's sweeper writes it: the composed config with the command line in
    hydra.overrides.task (the sweep values unexpanded)."""
    with initialized():
        cfg = compose("train", overrides=[o for o in cli if "," not in o], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = cli
        cfg.hydra.overrides.hydra = [f"hydra.sweep.dir={sweep}"]
        cfg.hydra.job.config_name = "train"
    sweep.mkdir(parents=True)
    OmegaConf.save(cfg, sweep / "multirun.yaml")


def finish(run_dir: Path, **extra) -> None:
    run_dir.mkdir(parents=True)
    m = {k: 1.0 for k in runs.TRAIN_KEYS + runs.EVAL_KEYS} | extra
    (run_dir / "metrics.json").write_text(json.dumps(m))
    (run_dir / "grid.png").write_bytes(b"")


def test_status_of_a_fake_sweep(tmp_path):
    sweep = tmp_path / "compare_quick"
    fake_sweep(sweep, CLI)
    finish(sweep / "sinsemi_seed0")
    finish(sweep / "gpnn_seed1")
    (sweep / "gpdm_seed0").mkdir()  # started, not finished
    finished_eval_only = sweep / "singan_seed0"  # an evaluation's metrics.json without the job's own keys
    finished_eval_only.mkdir()
    (finished_eval_only / "metrics.json").write_text(json.dumps({k: 1.0 for k in runs.EVAL_KEYS}))
    st = S.sweep_status(sweep)
    by_dir = {r.run_dir.name: r.state for r in st.runs}
    assert len(st.runs) == 8  # 4 generators x 2 seeds (the command line's axes win over the experiment's)
    assert by_dir["sinsemi_seed0"] == S.FINISHED and by_dir["gpnn_seed1"] == S.FINISHED
    assert by_dir["gpdm_seed0"] == S.STARTED and by_dir["singan_seed0"] == S.STARTED
    assert by_dir["sinsemi_seed1"] == S.MISSING
    assert st.count(S.MISSING) == 4 and not st.finished

    out = S.report(st, [S.single_run_status(tmp_path / "reference_quick")])
    assert "finished generator=sinsemi seed=0" in out and "missing  generator=sinsemi seed=1" in out
    assert "2 of 9 finished; 2 started, 5 missing" in out


def test_a_failed_job_is_named_with_its_error(tmp_path):
    sweep = tmp_path / "sweep"
    fake_sweep(sweep, ["generator=gpnn,gpdm", "profile=tiny", "logger=none"])
    _, _, jobs = S.planned_jobs(sweep)
    (sweep / JOBS_DIR).mkdir()
    (sweep / JOBS_DIR / "00001.json").write_text(json.dumps(
        {"num": 1, "overrides": jobs[1], "status": "failed", "error": "seed must be an integer >= 0"}))
    st = S.sweep_status(sweep)
    assert [r.state for r in st.runs] == [S.MISSING, S.FAILED]
    assert st.runs[1].error == "seed must be an integer >= 0"
    assert S.main([str(sweep)]) == 1


def test_all_finished_exits_0(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    fake_sweep(sweep, ["generator=gpnn,gpdm", "profile=tiny", "logger=none"])
    st = S.sweep_status(sweep)
    assert [r.run_dir.name for r in st.runs] == ["0", "1"]  # Hydra's default subdir: the job number
    for r in st.runs:
        finish(r.run_dir)
    finish(tmp_path / "ref")
    assert S.main([str(sweep), "--also", str(tmp_path / "ref")]) == 0
    assert "all 3 runs finished" in capsys.readouterr().out


def test_not_a_sweep_dir_is_one_clear_error(tmp_path, capsys):
    assert S.main([str(tmp_path)]) == 2
    assert "not a sweep dir (no multirun.yaml)" in capsys.readouterr().err
    with pytest.raises(InputError, match="multirun.yaml"):
        S.sweep_status(tmp_path)


def test_a_run_evaluated_with_other_unet_settings_is_not_finished():
    """The rule a sweep skips a run by: with the U-Net asked for, its figures must come from the job's
    U-Net settings (else the run is re-evaluated on resume, not refitted); without it they do not matter."""
    from sinsemi.runs import is_finished

    m = {"sifid_mean": 1.0, "lpips_mean": 1.0, "defect_count_mean": 0.5, "seg_train_set": "samples",
         "seg_settings": {"epochs": 20, "test_set": {"new_places_n": 100}}}
    same, other = dict(m["seg_settings"]), {"epochs": 60, "test_set": {"new_places_n": 100}}
    assert is_finished(m, evaluate=True, segmentation=True, seg_settings=same)
    assert not is_finished(m, evaluate=True, segmentation=True, seg_settings=other)
    assert is_finished(m, evaluate=True, segmentation=False, seg_settings=other)
    assert not is_finished({k: v for k, v in m.items() if k != "seg_settings"}, evaluate=True, segmentation=True, seg_settings=same)
    assert is_finished(m, evaluate=True, segmentation=True)  # no settings given: the keys alone


def test_the_reference_row_must_share_the_sweeps_unet_settings(tmp_path):
    """With the U-Net in the sweep (Table 3), the two-reference row counts as finished only when its
    U-Net figures were made with the settings the sweep's jobs ask for (``make reference`` re-evaluates it)."""
    sweep = tmp_path / "compare_quick"
    fake_sweep(sweep, ["experiment=table3", "profile=quick", "launcher=local", "generator=gpnn,gpdm", "seed=0"])
    st = S.sweep_status(sweep)
    want = st.seg_settings
    assert want is not None and want["epochs"] == 20 and "test_set" in want  # conf/downstream/quick.yaml
    ref = tmp_path / "reference_quick"
    ref.mkdir()
    m = {k: 1.0 for k in runs.EVAL_KEYS + runs.SEG_KEYS}
    (ref / "metrics.json").write_text(json.dumps(m | {"seg_settings": want | {"epochs": 60}}))
    assert S.single_run_status(ref, seg_settings=want).state == S.STARTED
    assert S.single_run_status(ref).state == S.FINISHED  # Tables 1-2: the U-Net does not matter
    (ref / "metrics.json").write_text(json.dumps(m | {"seg_settings": want}))
    assert S.single_run_status(ref, seg_settings=want).state == S.FINISHED
    assert S.sweep_status(_table2(tmp_path)).seg_settings is None


def _table2(tmp_path: Path) -> Path:
    sweep = tmp_path / "compare_t2"
    fake_sweep(sweep, ["experiment=table2", "profile=quick", "launcher=local", "generator=gpnn", "seed=0"])
    return sweep
