"""The job's logger from ``cfg.logger`` (``conf/logger/``): W&B, CSV, TensorBoard or none.

W&B (Lightning's ``WandbLogger``): group = experiment + profile (the experiment: ``experiment_name``,
else the one of the training run the job samples or evaluates, so a sweep's energy re-sampling and
evaluations land beside its generator runs; else the generator), tags from
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
from sinsemi.evaluation.keys import REFERENCE_ROW

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


def _is_run_dir(path: Path) -> bool:
    """A training run dir: its config.yaml and its model's generator.json."""
    return (path / "config.yaml").is_file() and (path / "model" / "generator.json").is_file()


def source_run(cfg: Mapping) -> Path | None:
    """The training run a job is about, or None: a sample job's ``run_dir``; an eval job's
    ``samples_dir`` when it is a run dir or lies inside one (``RUN/samples/<settings>/``, a bundle in it)."""
    where = cfg.get("run_dir") or cfg.get("samples_dir")
    if not where or str(where) == "???":
        return None
    path = Path(str(where))
    for p in (path, *list(path.parents)[:3]):  # RUN, RUN/samples, RUN/samples/<settings>, .../samples.npz
        if _is_run_dir(p):
            return p
    return None


def _run_config(cfg: Mapping) -> dict:
    """The source run's config.yaml as data ({} without one, or when it cannot be read: the job itself
    reads it with every check, this is only for labels)."""
    run = source_run(cfg)
    if run is None:
        return {}
    from sinsemi import runs

    try:
        return runs.read_run_config(run)
    except InputError:
        return {}


def experiment_of(cfg: Mapping) -> str | None:
    """``experiment_name``, else the experiment of the run the job samples or evaluates (an energy
    re-sampling of a sweep's SinSEMI run belongs to the sweep)."""
    return cfg.get("experiment_name") or _run_config(cfg).get("experiment_name") or None


def logger_group(cfg: Mapping, label: str | None = None) -> str:
    """``logger.group``, else the experiment (:func:`experiment_of`; else ``label``, default the
    generator) and the profile: ``table2-quick``, ``sinsemi-tiny``."""
    lg = cfg.get("logger") or {}
    if lg.get("group"):
        return str(lg["group"])
    base = experiment_of(cfg) or label or job_label(cfg)
    profile = cfg.get("profile_name")
    return f"{base}-{profile}" if profile else str(base)


def logger_tags(cfg: Mapping, extra: tuple[str | None, ...] = ()) -> list[str]:
    """``cfg.tags`` and ``extra``, deduplicated in order (empty or None entries skipped); each a non-empty
    string of at most 64 characters."""
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


def _bundle_sampler(cfg: Mapping) -> dict | None:
    """The sampler settings stored in the evaluated samples' bundle (a re-sampled folder's own), or None."""
    import json

    import numpy as np

    where = cfg.get("samples_dir")
    if not where:
        return None
    path = Path(str(where))
    for bundle in (path, path / "samples.npz", path / "samples" / "samples.npz"):
        if bundle.is_file() and bundle.suffix == ".npz":
            try:
                with np.load(bundle, allow_pickle=False) as z:  # reads the meta member only
                    return json.loads(str(z["meta"])).get("sampler") if "meta" in z else None
            except Exception:  # an unreadable bundle: the job itself reports it
                return None
    return None


def comparison_config(cfg: Mapping, label: str | None = None) -> dict:
    """The keys every run carries in its W&B config so runs of any job compare in one table:
    ``generator`` (``{"name": ...}``, as train runs have it), ``profile`` (the profile's name),
    ``sampler`` (the settings the samples were drawn with) and ``experiment_name``. A train or sample
    job has them in its config; an eval job takes them from the samples' bundle and the run they
    come from, else its row label (``two references``)."""
    run = _run_config(cfg)
    gen = cfg.get("generator") or run.get("generator") or {"name": label or job_label(cfg)}
    if cfg.get("mode") == "reference":
        gen = {"name": label or REFERENCE_ROW}
    sampler = cfg.get("sampler") or _bundle_sampler(cfg) or run.get("sampler")
    return {"generator": _plain(gen), "profile": cfg.get("profile_name") or run.get("profile_name"),
            "sampler": _plain(sampler) if sampler is not None else None, "experiment_name": experiment_of(cfg)}


def row_tag(cfg: Mapping, label: str | None = None) -> str | None:
    """The tag an eval run is found by: the evaluated samples' generator (:func:`comparison_config`),
    never a re-sampled folder's long settings name (that is the run's name; W&B refuses tags over 64
    characters); None when even the generator's name is too long."""
    gen = comparison_config(cfg, label)["generator"]
    name = str(gen.get("name") if isinstance(gen, Mapping) else gen)
    return name if 0 < len(name) <= MAX_TAG else None


def new_run_id() -> str:
    """A fresh W&B run id: 8 random lowercase letters and digits, as wandb makes them."""
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def make_logger(cfg: Mapping, run_dir: Path, *, job_type: str, label: str | None = None,
                tags: tuple[str | None, ...] = ()):
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
        config={**_plain(cfg), **comparison_config(cfg, label)}, reinit="finish_previous",
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
