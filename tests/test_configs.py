"""Every config group option composes, and what it names instantiates (configs cannot rot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sinsemi.cli._common import conf_dir
from sinsemi.generators.base import GENERATORS, Runtime, build_generator

CONF = Path(conf_dir())
PROFILES = sorted(p.stem for p in (CONF / "profile").glob("*.yaml"))  # quick, standard, paper, tiny


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(root: str, overrides: list[str], hydra_cfg: bool = False):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(root, overrides=overrides, return_hydra_config=hydra_cfg)


def test_every_generator_has_all_files():
    for name in GENERATORS:
        assert (CONF / "generator" / f"{name}.yaml").exists(), name
        assert (CONF / "sampler" / f"{name}.yaml").exists(), name
        for p in PROFILES:
            assert (CONF / "generator_profile" / f"{name}_{p}.yaml").exists(), f"{name}_{p}"
    # and no stray option names a generator the registry does not know
    assert set(options("generator")) == set(GENERATORS)


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


@pytest.mark.parametrize("group", ["data", "trainer", "logger", "profile", "launcher"])
def test_group_options_compose(group):
    for opt in options(group):
        cfg = _compose("train", [f"{group}={opt}"], hydra_cfg=True)
        OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize("logger", ["none", "wandb", "csv", "tensorboard"])
def test_logger_options_compose_on_every_root_and_build(logger, tmp_path, monkeypatch):
    """logger=none|wandb|csv|tensorboard on train, sample and eval; csv/tensorboard build Lightning's
    logger writing into the run dir (wandb: tests/test_loggers.py, tests/test_wandb.py)."""
    from sinsemi.cli.loggers import make_logger

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
        assert params["gpus_per_node"] == 1 and params["max_num_timeout"] > 0
        assert params["tasks_per_node"] == cfg.trainer.devices
    obj = cls(**params) if params else cls()
    assert isinstance(obj, Launcher)
    for cb in (cfg.hydra.get("callbacks") or {}).values():
        assert instantiate(cb) is not None


@pytest.mark.parametrize("experiment", ["compare", "table1", "table2", "table3"])
def test_experiments_compose(experiment):
    cfg = _compose("train", [f"experiment={experiment}"], hydra_cfg=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    gens = str(cfg.hydra.sweeper.params.generator).split(",")
    assert set(gens) == set(GENERATORS)
    assert cfg.evaluate is True
    assert cfg.segmentation is (experiment == "table3")


@pytest.mark.parametrize("ablation,key", [("steps", "sampler.steps"), ("guidance", "sampler.guidance")])
def test_ablations_compose(ablation, key, tmp_path):
    cfg = _compose("sample", [f"ablation={ablation}", f"run_dir={tmp_path}"], hydra_cfg=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert key in cfg.hydra.sweeper.params
    assert cfg.evaluate is True
    assert OmegaConf.select(cfg, key) is not None  # the swept key exists in the sampler group


def test_roots_compose():
    for root in ["train", "sample", "eval", "simulate"]:
        assert (CONF / f"{root}.yaml").exists(), root
    _compose("train", [])
    _compose("sample", ["run_dir=/nonexistent"])
