"""A job's :class:`~sinsemi.generators.base.Runtime` (device, precision, budget, logger, callbacks)
from its ``trainer``, ``logger`` and ``callbacks`` settings."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.jobs.config import to_plain

log = logging.getLogger("sinsemi")


def make_runtime(cfg: Mapping, run_dir: Path, *, job_type: str):
    """Build the :class:`Runtime` (device, precision, budget, logger) from ``cfg.trainer``/``cfg.logger``."""
    from sinsemi.generators.base import Runtime
    from sinsemi.tracking.loggers import make_logger
    from sinsemi.validation import check_trainer, resolve_device

    tr = cfg["trainer"]
    check_trainer(to_plain(tr))
    device, accel = resolve_device(tr["accelerator"])
    ckpt = cfg.get("ckpt_path", "last")
    logger = make_logger(cfg, run_dir, job_type=job_type)
    rt = Runtime(
        device=device,
        precision=str(tr["precision"]),
        max_steps=tr["max_steps"],
        progress=bool(tr["progress"]),
        logger=logger,
        log_every=int(tr["log_every"]),
        checkpoint_every=int(tr["checkpoint_every"]),
        snapshots=tuple(float(f) for f in tr.get("snapshots") or ()),
        detect_anomaly=bool(tr.get("detect_anomaly", False)),
        resume=ckpt is not None,  # "last" or a file (checked by validate_train)
        resume_from=None if ckpt in (None, "last") else str(Path(str(ckpt)).expanduser().resolve()),
        trainer_kwargs={"devices": tr.get("devices", 1), "accelerator": accel},
        callbacks=make_callbacks(cfg.get("callbacks"), logger=logger, progress=bool(tr["progress"])),
    )
    log.debug("runtime: %s", rt)  # shown with hydra.verbose=sinsemi (debug=...)
    return rt


def make_callbacks(cbs_cfg: Mapping | None, *, logger, progress: bool) -> list | None:
    """The Lightning callbacks of the ``callbacks`` group (each entry a ``_target_`` config), or None
    when the config has no such group (the generator's default). Dropped with a log line, since
    Lightning refuses them: a LearningRateMonitor without a logger, a progress bar with
    ``trainer.progress=false``. Only a Lightning fit (SinSEMI) uses them."""
    if cbs_cfg is None:
        return None
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar

    out = []
    for key, c in cbs_cfg.items():
        if not isinstance(c, Mapping) or "_target_" not in c:
            raise InputError(f"callbacks.{key} must be a config with a _target_ (a Lightning callback class), got {c!r}")
        try:
            cb = instantiate(c)
        except InstantiationException as e:
            raise InputError(f"callbacks.{key}: cannot build {c['_target_']}: {str(e).splitlines()[-1]}") from None
        if isinstance(cb, LearningRateMonitor) and logger is None:
            log.info("callbacks.%s (LearningRateMonitor) not used: no logger (logger=none)", key)
            continue
        if isinstance(cb, ProgressBar) and not progress:
            log.info("callbacks.%s (progress bar) not used: trainer.progress=false", key)
            continue
        out.append(cb)
    return out
