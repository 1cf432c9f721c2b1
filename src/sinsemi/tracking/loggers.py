"""The job's logger from ``cfg.logger`` (``conf/logger/``): W&B, CSV, TensorBoard or none.

W&B (Lightning's ``WandbLogger``): group = experiment (else generator) + profile, tags from
``cfg.tags``, the run id kept in the run dir (``wandb_id.json``) and resumed on a requeue or rerun,
online when the user is logged in (``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc),
offline under the run dir otherwise; ``WANDB_MODE`` (e.g. ``disabled`` in CI) wins over both.
CSV / TensorBoard: Lightning's own loggers, instantiated from the group's ``_target_`` into the
run dir, so the curves are on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sinsemi.errors import InputError

log = logging.getLogger("sinsemi")

WANDB_HOST = "https://api.wandb.ai"
MAX_TAG = 64  # W&B refuses longer tags
ARTIFACTS = (None, True, False)  # None: when the job evaluates


@dataclass(frozen=True)
class WandbMode:
    """The mode a W&B run starts in and why (the one INFO line a job prints)."""

    mode: str  # online | offline | disabled | ...
    why: str


def wandb_api_key_source() -> str | None:
    """Where an API key for the W&B host comes from: ``WANDB_API_KEY`` or the netrc file
    (``$NETRC``, else ~/.netrc), as ``wandb login`` writes it; None when the user is not logged in."""
    if os.environ.get("WANDB_API_KEY"):
        return "WANDB_API_KEY"
    import netrc

    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or WANDB_HOST).netloc
    try:
        creds = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):  # no netrc, or one wandb could not read either
        return None
    return str(path) if creds and creds[2] else None


def wandb_mode(configured: str | None) -> WandbMode:
    """``WANDB_MODE`` if set, else ``logger.mode`` if set, else online when logged in, else offline."""
    env = os.environ.get("WANDB_MODE")
    if env:
        return WandbMode(env, "WANDB_MODE is set")
    if configured:
        return WandbMode(str(configured), "logger.mode is set")
    source = wandb_api_key_source()
    if source:
        return WandbMode("online", f"logged in ({source})")
    return WandbMode("offline", "not logged in (no WANDB_API_KEY, no netrc entry): upload later with `make wandb-sync`")


def job_label(cfg: Mapping) -> str:
    """What a job is about when nothing else says: its generator (train, sample), else ``sinsemi``."""
    gen = cfg.get("generator")
    return str((gen.get("name") if gen else None) or "sinsemi")


def logger_group(cfg: Mapping, label: str | None = None) -> str:
    """``logger.group``, else the experiment (else ``label``, default the generator) and the
    profile: ``table2-quick``, ``sinsemi-tiny``."""
    lg = cfg.get("logger") or {}
    if lg.get("group"):
        return str(lg["group"])
    base = cfg.get("experiment_name") or label or job_label(cfg)
    profile = cfg.get("profile_name")
    return f"{base}-{profile}" if profile else str(base)


def logger_tags(cfg: Mapping, extra: tuple[str, ...] = ()) -> list[str]:
    """``cfg.tags`` and ``extra``, deduplicated in order; each a non-empty string of at most 64 characters."""
    tags = cfg.get("tags")
    if tags is None:
        tags = []
    if isinstance(tags, str) or not hasattr(tags, "__iter__"):
        raise InputError(f"tags must be a list of strings, got {tags!r}")
    out: list[str] = []
    for t in [*tags, *extra]:
        if t is None or t == "":
            continue
        t = str(t)
        if len(t) > MAX_TAG:
            raise InputError(f"tag {t!r} is longer than {MAX_TAG} characters (W&B refuses it)")
        if t not in out:
            out.append(t)
    return out


def artifacts_wanted(cfg: Mapping, *, evaluates: bool) -> bool:
    """``logger.artifacts``: true / false, or null = only for jobs that evaluate."""
    value = (cfg.get("logger") or {}).get("artifacts")
    if value not in ARTIFACTS:
        raise InputError(f"logger.artifacts must be true, false or null (when the job evaluates), got {value!r}")
    return evaluates if value is None else bool(value)


def check_logger_settings(cfg: Mapping) -> None:
    """The logger settings a job refuses (tags, logger.artifacts), checked before anything is written."""
    logger_tags(cfg)
    if cfg.get("logger") is not None and str(cfg["logger"].get("name")) == "wandb":
        artifacts_wanted(cfg, evaluates=False)


def _plain(cfg):
    """The config as plain data (W&B's run config)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def new_run_id() -> str:
    """A fresh W&B run id: 8 random lowercase letters and digits, as wandb makes them."""
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def make_logger(cfg: Mapping, run_dir: Path, *, job_type: str, label: str | None = None,
                tags: tuple[str, ...] = ()):
    """The job's Lightning logger (see the module doc), or None for ``logger=none`` or
    ``WANDB_MODE=disabled``. ``label``: what the job is about (default: the generator), the W&B run
    name ``<label>-<run dir name>`` and the group's default; ``tags``: added to ``cfg.tags``.
    Checks the logger settings before anything is started."""
    lg = cfg.get("logger")
    kind = "none" if lg is None else str(lg.get("name", "none"))
    if kind == "none":
        return None
    run_dir = Path(run_dir)
    if lg.get("_target_"):  # csv, tensorboard: Lightning's loggers as the group names them
        from hydra.utils import instantiate

        run_dir.mkdir(parents=True, exist_ok=True)
        return instantiate(lg, save_dir=str(lg.get("save_dir") or run_dir))
    if kind != "wandb":
        raise InputError(f"logger={kind} is not a logger this project knows (none, wandb, csv, tensorboard)")
    check_logger_settings(cfg)  # now, not at the end of the job
    all_tags = logger_tags(cfg, tags)
    mode = wandb_mode(lg.get("mode"))
    if mode.mode == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger

    from sinsemi import runs

    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = runs.logger_run_id(run_dir, job_type, new_run_id)
    log.info("W&B: %s run %s (%s), logging to %s", mode.mode, run_id, mode.why, run_dir / "wandb")
    label = label or job_label(cfg)
    return WandbLogger(
        project=lg["project"], entity=lg.get("entity"), group=logger_group(cfg, label), job_type=job_type, tags=all_tags,
        save_dir=str(run_dir), mode=mode.mode, id=run_id, resume="allow", name=f"{label}-{run_dir.name}",
        config=_plain(cfg), reinit="finish_previous",
    )


def finish_logger(logger) -> None:
    """Flush and close the job's logger (the W&B run too: multirun jobs share a process)."""
    if logger is None:
        return
    try:
        logger.finalize("success")
        from lightning.pytorch.loggers import WandbLogger

        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()
    except Exception as e:  # logging must never fail a finished job
        log.warning("could not finish the %s logger: %s", type(logger).__name__, e)
