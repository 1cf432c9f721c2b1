"""Every config group option composes, and what it names instantiates (configs cannot rot)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sinsemi.generators.base import GENERATORS, Runtime, build_generator
from sinsemi.generators.registry import RECIPES

CONF = Path(str(files("sinsemi.conf")))  # the repo's conf/ (editable install) or the installed package's copy
PROFILES = sorted(p.stem for p in (CONF / "profile").glob("*.yaml"))  # quick, standard, paper, tiny


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(root: str, overrides: list[str], hydra_cfg: bool = False):
    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return compose(root, overrides=overrides, return_hydra_config=hydra_cfg)


def test_every_generator_has_its_files():
    for name in GENERATORS:
        assert (CONF / "generator" / f"{name}.yaml").exists(), name
        assert (CONF / "sampler" / f"{name}.yaml").exists(), name
        assert (CONF / "generator_profile" / name / "quick.yaml").exists(), name  # what make demo/compare runs
    # and no stray option names a generator the registry does not know (or a recipe of one)
    assert set(options("generator")) == set(GENERATORS) | set(RECIPES)
    for recipe, base in RECIPES.items():
        cfg = _compose("train", [f"generator={recipe}", "profile=tiny"])
        assert cfg.generator.name == base and cfg.row == recipe
        for profile in PROFILES:  # a recipe has every profile's budget (else the paper's 120k steps would run)
            assert profile == "paper" or (CONF / "generator_profile" / recipe / f"{profile}.yaml").exists(), (recipe, profile)


def test_generator_profiles_are_optional_and_never_empty():
    """generator_profile/<generator>/<profile>.yaml: only what a profile changes, so no empty file and
    no file for an unknown generator or profile."""
    import yaml

    root = CONF / "generator_profile"
    assert not list(root.glob("*.yaml")), "profile files live in generator_profile/<generator>/"
    for d in root.iterdir():
        assert d.name in GENERATORS or d.name in RECIPES, d
        for f in d.glob("*"):
            assert f.suffix == ".yaml" and f.stem in PROFILES, f
            body = yaml.safe_load(f.read_text()) or {}
            assert any(body.get(k) for k in ("generator", "sampler", "trainer")), f"{f} changes nothing"


@pytest.mark.parametrize("name", sorted(GENERATORS) + sorted(RECIPES))
def test_standard_profile_builds_on_quick(name):
    """profile=standard: the generator's quick recipe, then its standard file when it has one."""
    quick, std = (_compose("train", [f"generator={name}", f"profile={p}"]) for p in ("quick", "standard"))
    want = OmegaConf.merge(quick, OmegaConf.load(CONF / "generator_profile" / name / "standard.yaml")
                           if (CONF / "generator_profile" / name / "standard.yaml").exists() else {})
    for key in ("generator", "sampler"):
        assert OmegaConf.to_container(std[key]) == OmegaConf.to_container(want[key]), key
    paper = _compose("train", [f"generator={name}", "profile=paper"])
    if name in GENERATORS and not (CONF / "generator_profile" / name / "paper.yaml").exists():  # the official settings, untouched
        for key in ("generator", "sampler"):
            assert OmegaConf.to_container(paper[key]) == OmegaConf.to_container(OmegaConf.load(CONF / key / f"{name}.yaml"))


@pytest.mark.parametrize("root", ["train", "sample"])
def test_every_eval_setting_composes_from_train_and_sample(root, tmp_path):
    """The eval group: train/sample hold sinsemi-eval's settings (same keys, same values per profile),
    so `sinsemi-train evaluate=true segmentation=true downstream.epochs=5 ...` composes."""
    from sinsemi.jobs.eval import EVAL_KEYS, eval_config
    from sinsemi.jobs.eval import job_eval_config as eval_settings

    extra = [f"run_dir={tmp_path}"] if root == "sample" else []
    for profile in PROFILES:
        job = OmegaConf.to_container(_compose(root, [f"profile={profile}", *extra]), resolve=True)
        ev = OmegaConf.to_container(_compose("eval", [f"profile={profile}"]), resolve=True)
        for key in EVAL_KEYS:
            assert job[key] == ev[key], (profile, key)
    over = ["evaluate=true", "segmentation=true", "downstream.epochs=5", "labeller.min_area=40", "test_set.random.n=3",
            "reference.preset_seed=2", "metrics.batch_size=7", "probe=false", "trainer.accelerator=cpu", *extra]
    cfg = _compose(root, over)
    ecfg = eval_settings(cfg, tmp_path)
    assert (ecfg.downstream.epochs, ecfg.labeller.min_area, ecfg.test_set.random_n) == (5, 40, 3)
    assert (ecfg.reference.preset_seed, ecfg.metrics.batch_size, ecfg.probe, ecfg.segmentation) == (2, 7, False, True)
    # without overrides: the config sinsemi-eval builds for the same profile, but for the job's flags
    base = eval_settings(_compose(root, ["trainer.accelerator=cpu", *extra]), tmp_path)
    ev = eval_config(_compose("eval", ["trainer.accelerator=cpu"]))
    assert base == ev.replace(out_dir=tmp_path, name="sinsemi", segmentation=False)


def test_bad_eval_setting_stops_a_train_job_before_the_fit(tmp_path):
    from sinsemi.jobs.train import train_run as train
    from sinsemi.errors import InputError

    cfg = _compose("train", ["generator=gpnn", "profile=tiny", "logger=none", "evaluate=true", "labeller.min_area=-3"])
    with pytest.raises(InputError, match="labeller.min_area"):
        train(cfg, tmp_path)
    assert not (tmp_path / "model").exists() and not (tmp_path / "samples").exists()


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_profile_composes_and_builds(name, profile):
    cfg = _compose("train", [f"generator={name}", f"profile={profile}"])
    assert cfg.generator.name == name
    assert cfg.profile_name == profile
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    params = OmegaConf.to_container(cfg.generator, resolve=True)
    gen = build_generator(params.pop("name"), params, Runtime(max_steps=cfg.trainer.max_steps, progress=False))
    assert gen.name == name


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_shipped_configs_pass_validation(name, profile, tmp_path):
    """The job-start checks refuse bad input, never a shipped config (sampler keys included)."""
    from sinsemi.validation import validate_sample, validate_train

    over = [f"generator={name}", f"profile={profile}", "trainer.accelerator=cpu", "allow_random_backbone=true"]
    validate_train(OmegaConf.to_container(_compose("train", over), resolve=True), tmp_path)
    cfg = OmegaConf.to_container(_compose("sample", [*over, f"run_dir={tmp_path}"]), resolve=True)
    validate_sample(cfg, name)


@pytest.mark.parametrize("group", ["data", "trainer", "logger", "profile", "launcher", "callbacks", "debug", "paths", "local"])
def test_group_options_compose(group):
    for opt in options(group):
        cfg = _compose("train", [f"{group}={opt}"], hydra_cfg=True)
        OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize("logger", ["none", "wandb", "csv", "tensorboard"])
def test_logger_options_compose_on_every_root_and_build(logger, tmp_path, monkeypatch):
    """logger=none|wandb|csv|tensorboard on train, sample and eval; csv/tensorboard build Lightning's
    logger writing into the run dir (wandb: tests/test_loggers.py, tests/test_wandb.py)."""
    from sinsemi.tracking.loggers import make_logger

    monkeypatch.setenv("WANDB_MODE", "disabled")
    for root, extra in (("train", []), ("sample", [f"run_dir={tmp_path}"]), ("eval", [])):
        cfg = _compose(root, [f"logger={logger}", *extra])
        OmegaConf.to_container(cfg, resolve=True)
        assert cfg.logger.name == logger and list(cfg.tags)  # tags: at least the profile
    lg = make_logger(_compose("train", [f"logger={logger}"]), tmp_path / "run", job_type="train")
    if logger in ("csv", "tensorboard"):
        from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

        assert isinstance(lg, {"csv": CSVLogger, "tensorboard": TensorBoardLogger}[logger])
        assert Path(lg.log_dir).is_relative_to(tmp_path / "run")
    else:
        assert lg is None  # none, and wandb under WANDB_MODE=disabled


@pytest.mark.parametrize("launcher", ["local", "submitit_local", "slurm"])
def test_launcher_instantiates(launcher, tmp_path):
    from hydra.plugins.launcher import Launcher
    from hydra.utils import get_class

    cfg = _compose("train", [f"launcher={launcher}", f"hydra.sweep.dir={tmp_path}"], hydra_cfg=True)
    OmegaConf.update(cfg, "hydra.job.name", "train")  # set by Hydra at run time
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    cls = get_class(params.pop("_target_"))
    assert issubclass(cls, Launcher)
    if launcher == "slurm":
        assert params["max_num_timeout"] > 0
        assert params["gpus_per_node"] == params["tasks_per_node"] == cfg.trainer.devices  # one rank per GPU
    obj = cls(**params) if params else cls()
    assert isinstance(obj, Launcher)
    for cb in (cfg.hydra.get("callbacks") or {}).values():
        assert instantiate(cb) is not None


@pytest.mark.parametrize("launcher", ["local", "submitit_local", "slurm"])
def test_reference_evaluation_can_run_as_a_cluster_job(launcher, tmp_path):
    # make tableN LAUNCHER=slurm submits `sinsemi-eval -m mode=reference launcher=slurm` (not on the login node)
    cfg = _compose("eval", ["mode=reference", "profile=paper", f"launcher={launcher}", f"hydra.sweep.dir={tmp_path}"],
                   hydra_cfg=True)
    OmegaConf.update(cfg, "hydra.job.name", "eval")
    launch = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    if launcher == "slurm":
        assert launch["_target_"] == "hydra_plugins.sinsemi_launcher.sinsemi_launcher.SlurmLauncher" and launch["wait"] is True
        assert launch["tasks_per_node"] == cfg.trainer.devices


def test_slurm_launcher_can_return_without_waiting(tmp_path):
    from hydra.utils import get_class

    cfg = _compose("train", ["launcher=slurm", "hydra.launcher.wait=false", f"hydra.sweep.dir={tmp_path}"], hydra_cfg=True)
    OmegaConf.update(cfg, "hydra.job.name", "train")
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    obj = get_class(params.pop("_target_"))(**params)
    assert obj.wait is False and "wait" not in obj.params  # not passed on to sbatch


def test_slurm_launcher_asks_for_one_gpu_per_device(tmp_path):
    cfg = _compose("train", ["launcher=slurm", "trainer.devices=4", f"hydra.sweep.dir={tmp_path}"], hydra_cfg=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["gpus_per_node"] == 4 and launcher["tasks_per_node"] == 4


@pytest.mark.parametrize("experiment", ["compare", "table1", "table2", "table3"])
def test_experiments_compose(experiment):
    cfg = _compose("train", [f"experiment={experiment}"], hydra_cfg=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    gens = str(cfg.hydra.sweeper.params.generator).split(",")
    assert set(gens) == set(GENERATORS) | set(RECIPES)  # every generator, and the paper-recipe row
    assert cfg.evaluate is True
    assert cfg.segmentation is (experiment == "table3")


@pytest.mark.parametrize("ablation,key", [("steps", "sampler.steps"), ("guidance", "sampler.guidance")])
def test_ablations_compose(ablation, key, tmp_path):
    cfg = _compose("sample", [f"ablation={ablation}", f"run_dir={tmp_path}"], hydra_cfg=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert key in cfg.hydra.sweeper.params
    assert cfg.evaluate is True
    assert OmegaConf.select(cfg, key) is not None  # the swept key exists in the sampler group


def test_every_cli_composes_from_the_package():
    """Every @hydra.main reads pkg://sinsemi.conf: the same configs in a wheel and in an editable install."""
    import sinsemi

    mains = [p for p in (Path(sinsemi.__file__).parent / "cli").glob("*.py") if "@hydra.main(" in p.read_text()]
    assert len(mains) >= 4
    for p in mains:
        assert 'config_path="pkg://sinsemi.conf"' in p.read_text(), p.name


def test_roots_compose():
    for root in ["train", "sample", "eval", "simulate"]:
        assert (CONF / f"{root}.yaml").exists(), root
    _compose("train", [])
    _compose("sample", ["run_dir=/nonexistent"])


# ----------------------------------------------------------------------------- callbacks / debug / paths / local
def _callbacks(overrides: list[str], *, logger=None, progress: bool = False):
    from sinsemi.jobs.runtime import make_callbacks

    cfg = _compose("train", ["profile=tiny", *overrides])
    return make_callbacks(cfg.callbacks, logger=logger, progress=progress)


@pytest.mark.parametrize("option", options("callbacks"))
def test_callbacks_options_build_lightning_callbacks(option):
    from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar

    cbs = _callbacks([f"callbacks={option}"], logger=object(), progress=True)
    assert cbs is not None and all(isinstance(c, Callback) for c in cbs)
    kinds = {type(c) for c in cbs}
    if option == "none":
        assert cbs == []
        return
    ck = next(c for c in cbs if isinstance(c, ModelCheckpoint))
    assert ck.dirpath is None  # the fit points it at <run_dir>/checkpoints
    assert ck._every_n_train_steps == 3  # trainer.checkpoint_every of the tiny profile
    assert ck.save_top_k == (-1 if option == "keep_all" else 0) and ck.save_last is True
    assert LearningRateMonitor in kinds
    assert (TQDMProgressBar in kinds) == (option == "tqdm")


def test_callbacks_lightning_would_refuse_are_dropped():
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    cbs = _callbacks(["callbacks=tqdm"], logger=None, progress=False)  # logger=none, trainer.progress=false
    assert [type(c) for c in cbs] == [ModelCheckpoint]
    assert any(isinstance(c, LearningRateMonitor) for c in _callbacks([], logger=object()))


def test_callbacks_bad_entry_is_an_input_error():
    from sinsemi.errors import InputError

    with pytest.raises(InputError, match="callbacks.bad: cannot build lightning.pytorch.callbacks.NoSuch"):
        _callbacks(["+callbacks.bad._target_=lightning.pytorch.callbacks.NoSuch"])
    with pytest.raises(InputError, match="callbacks.plain must be a config with a _target_"):
        _callbacks(["+callbacks.plain=3"])


@pytest.mark.parametrize("option", ["default", "keep_all", "none"])
def test_callbacks_reach_the_sinsemi_fit(option, tmp_path):
    """The group decides what the Lightning fit writes: every step checkpoint (keep_all), only
    last.ckpt (default), or only the final last.ckpt (none: no periodic one at step 3)."""
    from sinsemi.jobs.train import train_run as train
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    seen = []
    step = SinSEMIModule.training_step

    def watch(self, batch, batch_idx):  # which checkpoints exist when step 5 starts
        if self.global_step == 4:
            seen.extend(sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt")))
        return step(self, batch, batch_idx)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SinSEMIModule, "training_step", watch)
        train(_compose("train", ["profile=tiny", "logger=none", "n_samples=1", f"callbacks={option}"]), tmp_path)
    want = {"keep_all": ["last.ckpt", "step3.ckpt"], "default": ["last.ckpt"], "none": []}[option]
    assert seen == want
    final = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert final == (["last.ckpt", "step3.ckpt", "step6.ckpt"] if option == "keep_all" else ["last.ckpt"])


@pytest.mark.parametrize("option", options("debug"))
def test_debug_options_compose(option):
    steps = {"default": 5, "fdr": 1, "limit": 20}[option]
    for name in ("sinsemi", "gpnn"):  # one Lightning fit, one training-free
        cfg = _compose("train", ["profile=tiny", f"generator={name}", f"debug={option}"], hydra_cfg=True)
        assert cfg.trainer.max_steps == steps and cfg.trainer.detect_anomaly is True
        assert cfg.logger.name == "none" and cfg.evaluate is False
        assert cfg.hydra.verbose == "sinsemi"
        assert cfg.hydra.run.dir.startswith("outputs/debug/")


def test_debug_fdr_runs_one_step_with_anomaly_detection(tmp_path):
    """sinsemi-train profile=tiny debug=fdr: one training step (under torch's anomaly detection),
    one sample, a finished run."""
    import torch

    from sinsemi.jobs.train import train_run as train
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    seen = []
    step = SinSEMIModule.training_step

    def watch(self, batch, batch_idx):
        seen.append((self.global_step, torch.is_anomaly_enabled()))
        return step(self, batch, batch_idx)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SinSEMIModule, "training_step", watch)
        metrics = train(_compose("train", ["profile=tiny", "debug=fdr"]), tmp_path)
    assert seen == [(0, True)]
    assert not torch.is_anomaly_enabled()  # switched off again after the fit
    assert metrics["n_samples"] == 1 and (tmp_path / "metrics.json").exists()


def _user_dir(tmp_path, local_yaml: str) -> Path:
    """A per-machine config dir as README describes it: <dir>/local/default.yaml."""
    (tmp_path / "me" / "local").mkdir(parents=True)
    (tmp_path / "me" / "local" / "default.yaml").write_text(local_yaml)
    return tmp_path / "me"


LOCAL = ("# @package _global_\nslurm:\n  partition: gpu-a100\n  account: proj42\n  setup: [module load cuda]\n"
         "paths:\n  output_dir: /scratch/me\n")


def test_local_default_comes_from_the_search_path_and_overrides_slurm_and_paths(tmp_path):
    assert (CONF / "local" / "example.yaml").exists()
    assert sorted(p.name for p in (CONF / "local").iterdir()) == ["example.yaml"], "per-machine files live outside conf/"
    sp = f"hydra.searchpath=[file://{_user_dir(tmp_path, LOCAL)}]"
    cfg = _compose("train", [sp, "launcher=slurm", "generator=gpnn"], hydra_cfg=True)
    exp = _compose("train", [sp, "experiment=compare"], hydra_cfg=True)
    abl = _compose("sample", [sp, "ablation=steps", "run_dir=/r", "launcher=slurm"], hydra_cfg=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["partition"], launcher["account"], launcher["qos"]) == ("gpu-a100", "proj42", None)
    assert launcher["setup"] == ["module load cuda"]
    assert cfg.hydra.run.dir.startswith("/scratch/me/gpnn/")
    assert exp.hydra.sweep.dir == "/scratch/me/compare_quick"
    assert abl.hydra.sweep.dir == "/scratch/me/ablation/steps_quick"
    assert abl.hydra.launcher.partition == "gpu-a100"
    cfg = _compose("train", ["launcher=slurm"], hydra_cfg=True)  # without it: the shipped defaults
    assert cfg.hydra.launcher.partition is None and cfg.hydra.run.dir.startswith("outputs/")


def test_local_default_reaches_a_cli_through_config_dir(tmp_path):
    """`sinsemi-train --config-dir DIR`: the CLI composes pkg://sinsemi.conf plus DIR/local/default.yaml."""
    import subprocess
    import sys

    me = _user_dir(tmp_path, LOCAL)
    code = "import sys; from sinsemi.cli.train import main; sys.argv[0] = 'sinsemi-train'; main()"
    out = subprocess.run([sys.executable, "-c", code, "--config-dir", str(me), "--cfg", "job", "--package", "paths",
                          "generator=gpnn"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "output_dir: /scratch/me" in out.stdout
    plain = subprocess.run([sys.executable, "-c", code, "--cfg", "job", "--package", "paths"], capture_output=True,
                           text=True, timeout=120)
    assert plain.returncode == 0 and "output_dir: outputs" in plain.stdout, plain.stderr[-2000:]


def test_paths_output_dir_moves_every_output_root(tmp_path):
    over = [f"paths.output_dir={tmp_path}"]
    run = _compose("train", [*over, "generator=gpdm"], hydra_cfg=True)
    assert run.hydra.run.dir.startswith(f"{tmp_path}/gpdm/")
    assert _compose("train", [*over, "experiment=table2"], hydra_cfg=True).hydra.sweep.dir == f"{tmp_path}/compare_quick"
    assert _compose("sample", [*over, "ablation=guidance", "run_dir=/r"], hydra_cfg=True).hydra.sweep.dir.startswith(
        f"{tmp_path}/ablation/guidance_")
    assert _compose("simulate", over).out_dir == f"{tmp_path}/simulate/line_pair_seed0"
    assert _compose("train", [*over, "debug=fdr"], hydra_cfg=True).hydra.run.dir.startswith(f"{tmp_path}/debug/")


def test_bench_quick_net_is_the_quick_profile_net():
    """`make bench` times the net `make demo` trains: its quick row follows the quick profile."""
    from sinsemi.bench.sinsemi import NETS

    g = _compose("train", ["generator=sinsemi", "profile=quick"]).generator
    name, width, batch, weights, kernel, _rounds = NETS[0]
    assert name == "quick net"
    assert (width, batch, kernel) == (g.width, g.batch_size, g.kernel)
    assert list(weights) == list(g.scale_weights)
