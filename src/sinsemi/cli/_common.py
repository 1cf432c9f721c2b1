"""What every entry point shares: the config dir, error handling, runtime and logger wiring."""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sinsemi.errors import InputError

log = logging.getLogger("sinsemi")


def conf_dir() -> str:
    """The repo's ``conf/`` (editable install), or ``$SINSEMI_CONF``."""
    env = os.environ.get("SINSEMI_CONF")
    if env:
        return str(Path(env).resolve())
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "conf" / "train.yaml").exists():
            return str(parent / "conf")
    raise RuntimeError("cannot find the sinsemi conf/ directory: install with `pip install -e .` or set SINSEMI_CONF")


def clean_errors(fn):
    """Print an :class:`InputError` as one line and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def to_primitive(cfg: Any) -> Any:
    """DictConfig -> plain dict/list (resolved)."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg) else cfg


def check_positive(name: str, value, *, allow_none: bool = False, allow_zero: bool = False) -> None:
    """One clear error for a config value that must be a positive number."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise InputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")


def make_runtime(cfg: DictConfig, run_dir: Path, *, job_type: str):
    """Build the :class:`Runtime` (device, precision, budget, logger) from ``cfg.trainer``/``cfg.logger``."""
    from sinsemi.generators.base import Runtime

    tr = cfg.trainer
    check_positive("trainer.max_steps", tr.max_steps, allow_none=True)
    accel = tr.accelerator
    if accel == "auto":
        import torch

        accel = "gpu" if torch.cuda.is_available() else "cpu"
    if accel == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise InputError("trainer.accelerator=gpu but no CUDA device is available (use profile=quick or trainer.accelerator=cpu)")
    device = "cuda" if accel == "gpu" else "cpu"
    return Runtime(
        device=device,
        precision=str(tr.precision),
        max_steps=tr.max_steps,
        progress=bool(tr.progress),
        logger=make_logger(cfg, run_dir, job_type=job_type),
        log_every=int(tr.log_every),
        checkpoint_every=int(tr.checkpoint_every),
        resume=cfg.get("ckpt_path", "last") == "last",
        trainer_kwargs={"devices": tr.get("devices", 1), "accelerator": accel},
    )


def make_logger(cfg: DictConfig, run_dir: Path, *, job_type: str):
    """A Lightning ``WandbLogger`` (offline unless WANDB_API_KEY is set), or None."""
    lg = cfg.get("logger")
    if lg is None or lg.get("name", "none") == "none" or os.environ.get("WANDB_MODE") == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger

    mode = lg.get("mode") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    group = lg.get("group") or cfg.get("experiment_name") or cfg.generator.name
    run_dir.mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=lg.project, entity=lg.get("entity"), group=group, job_type=job_type, save_dir=str(run_dir),
        mode=mode, name=f"{cfg.generator.name}-{run_dir.name}", config=to_primitive(cfg), reinit="finish_previous",
    )


def finish_logger(logger) -> None:
    """End the W&B run (between multirun jobs)."""
    if logger is None:
        return
    try:
        import wandb

        logger.finalize("success")
        wandb.finish()
    except Exception as e:  # logging must never fail a finished job
        log.warning("could not finish the W&B run: %s", e)


def load_training_image(data_cfg: DictConfig):
    """The training image (C, H, W): ``data.image`` from disk, else the simulator preset's defect image."""
    from sinsemi.data.io import check_trainable, load_image

    if data_cfg.get("image"):
        img = load_image(data_cfg.image)
        return check_trainable(img, name=str(data_cfg.image))
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair(data_cfg.get("preset", "line_pair"), seed=int(data_cfg.get("preset_seed", 0)))
    return pair.defect


def sampler_tag(settings: dict, n: int, seed_base: int) -> str:
    """A stable, self-describing folder name for a set of sampler settings."""
    parts = [f"{k}{v}" for k, v in sorted(settings.items()) if not isinstance(v, (dict, list))]
    parts += [f"n{n}", f"seed{seed_base}"]
    return "_".join(parts).replace("/", "-") or "default"


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def preflight(argv: list[str]) -> None:
    """Checks before Hydra starts anything: SLURM must answer when ``launcher=slurm`` is asked for."""
    if any(a in ("launcher=slurm", "+launcher=slurm") for a in argv):
        from sinsemi.cli.callbacks import check_slurm

        check_slurm()
