"""What every entry point shares: error handling, the runtime (its logger: :mod:`sinsemi.cli.loggers`)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

from sinsemi.cli.loggers import finish_logger, make_logger  # noqa: F401  (the logger wiring; re-exported)
from sinsemi.errors import InputError, Interrupted
from sinsemi.validation import resolve_device  # noqa: F401  (the one device resolver; re-exported)

log = logging.getLogger("sinsemi")


# ----------------------------------------------------------------------------- the one error path
_SWEEP: dict[str, Any] = {"dir": None, "t0": time.time()}
JOBS_DIR = ".jobs"  # <sweep dir>/.jobs/<job num>.json: each point's outcome (read back for the summary)


class SweepPointFailed(CompactHydraException):
    """A multirun job whose input was bad: Hydra records the failed job and goes on with the sweep."""


def _job_record(hc, status: str, error: str | None = None, *, input_error: bool = False) -> None:
    from sinsemi.data.io import save_json

    _SWEEP["dir"] = str(hc.sweep.dir)
    rec = {"num": int(hc.job.num), "overrides": list(hc.overrides.task), "status": status, "error": error,
           "input_error": input_error}
    try:
        save_json(rec, Path(hc.sweep.dir) / JOBS_DIR / f"{int(hc.job.num):05d}.json")
    except (OSError, InputError) as e:  # the record helps the summary; it must not hide the job's own error
        log.warning("could not record the outcome of sweep point %s: %s", hc.job.num, e)


def task(fn):
    """Wrap a Hydra task function (the one ``@hydra.main`` calls): the one error path of every CLI.

    Single run: an :class:`InputError` becomes one ``error: ...`` line on stderr and exit 2.
    Multirun: the job's outcome is recorded and the error raised, so Hydra marks the job failed and
    runs the other points; :func:`cli_main` prints which points failed. SIGTERM/SIGINT become
    :class:`Interrupted` (see :func:`interruptible`)."""

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig):
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        quiet_other_ranks()
        try:
            with interruptible():
                out = fn(cfg)
        except InputError as e:
            if not multirun:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(2)
            _job_record(hc, "failed", str(e), input_error=True)
            log.error("sweep point %s failed: %s", " ".join(hc.overrides.task), e)
            raise SweepPointFailed(f"error: sweep point [{' '.join(hc.overrides.task)}] failed: {e}") from None
        except Exception as e:
            if multirun:
                _job_record(hc, "failed", f"{type(e).__name__}: {e}")
            raise
        if multirun:
            _job_record(hc, "done")
        return out

    return wrapper


def sweep_summary(sweep_dir: str | os.PathLike | None) -> tuple[str | None, bool]:
    """One line naming the failed points of the last multirun in ``sweep_dir`` (None when none
    failed), and whether every failure was bad input."""
    if not sweep_dir or not (Path(sweep_dir) / JOBS_DIR).is_dir():
        return None, False
    import json

    recs = []
    for p in sorted((Path(sweep_dir) / JOBS_DIR).glob("*.json")):
        try:
            if p.stat().st_mtime < _SWEEP["t0"] - 1:  # an earlier multirun's (no SweepReport callback cleared it)
                continue
            recs.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    failed = [r for r in recs if r.get("status") == "failed"]
    if not failed:
        return None, False
    # name a point by what varies across the sweep (all its overrides when nothing does)
    common = set.intersection(*(set(r["overrides"]) for r in recs)) if len(recs) > 1 else set()
    names = [" ".join(o for o in r["overrides"] if o not in common) or " ".join(r["overrides"]) for r in failed]
    line = (f"error: {len(failed)} of {len(recs)} sweep points failed: "
            + "; ".join(f"[{n}] {r['error']}" for n, r in zip(names, failed)))
    return line, all(r.get("input_error") for r in failed)


def reset_sweep_records(sweep_dir: str | os.PathLike) -> None:
    """Forget the outcomes of an earlier multirun into the same sweep dir (called at multirun start)."""
    import shutil

    _SWEEP["dir"] = str(sweep_dir)
    shutil.rmtree(Path(sweep_dir) / JOBS_DIR, ignore_errors=True)


def quiet_other_ranks() -> None:
    """On a DDP rank other than 0, drop the root logger's file handlers (SLURM tasks of one job share
    the job's log file; rank 0 writes it). The console stays: a rank's warnings and errors show."""
    from sinsemi.distributed import is_global_zero

    if is_global_zero():
        return
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(h)
        h.close()


def cli_main(hydra_main, argv_hook=None) -> None:
    """The console entry of every CLI: pre-Hydra checks, Hydra, then the sweep summary and exit code.

    A DDP rank > 0 that Lightning's launcher started by re-running the command line gets Hydra's
    ``none`` job logging: no ``<job name>.log`` of its own in the run dir, rank 0's log is the log."""
    from sinsemi.distributed import is_global_zero

    try:
        preflight(sys.argv[1:])
        if argv_hook is not None:
            sys.argv = [sys.argv[0], *argv_hook(sys.argv[1:])]
        if not is_global_zero():
            sys.argv.append("hydra/job_logging=none")
        hydra_main()
    except InputError as e:  # raised before Hydra runs a job (argv checks, SLURM preflight)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except SystemExit as e:
        line, bad_input = sweep_summary(_SWEEP["dir"])
        if line and e.code not in (None, 0, 2):
            print(line, file=sys.stderr)
            sys.exit(2 if bad_input else 1)
        raise
    line, bad_input = sweep_summary(_SWEEP["dir"])
    if line:  # a launcher that returned without raising on a failed job
        print(line, file=sys.stderr)
        sys.exit(2 if bad_input else 1)


# ----------------------------------------------------------------------------- interruptions
class _SignalState:
    signum: int | None = None
    active: bool = False


SIGNALS = _SignalState()


def _lightning_trainer():
    """The Lightning Trainer whose fit is running now (it composes the SIGTERM handler), or None."""
    h = signal.getsignal(signal.SIGTERM)
    for fn in getattr(h, "signal_handlers", ()) or ():
        conn = getattr(fn, "__self__", None)
        if conn is not None and hasattr(conn, "received_sigterm") and hasattr(conn, "trainer"):
            return conn
    return None


def _on_signal(signum, frame) -> None:
    first = SIGNALS.signum is None
    SIGNALS.signum = signum
    conn = _lightning_trainer()
    if conn is not None and first:
        # Inside a Lightning fit: stop after this step the way early stopping does, so the generator
        # writes its checkpoint on the way out (Lightning's own SIGTERM path exits without one).
        conn.received_sigterm = False
        conn.trainer.should_stop = True
        log.warning("received %s: stopping after this training step (checkpoint, then exit)", signal.Signals(signum).name)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible():
    """SIGTERM/SIGINT raise :class:`Interrupted` (nothing half-written: every write is atomic); a
    Lightning fit is stopped after its current step instead. Call :func:`check_interrupted` after a
    fit that may have stopped early."""
    import threading

    if threading.current_thread() is not threading.main_thread() or SIGNALS.active:
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    SIGNALS.signum, SIGNALS.active = None, True
    for s in old:
        signal.signal(s, _on_signal)
    try:
        yield
    except SystemExit:
        if SIGNALS.signum is not None:  # Lightning's SIGTERMException (exit code 0!) or ours
            raise Interrupted(SIGNALS.signum) from None
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        SIGNALS.signum, SIGNALS.active = None, False


def check_interrupted() -> None:
    """Raise :class:`Interrupted` when a signal arrived (e.g. a fit stopped early on SIGTERM)."""
    if SIGNALS.signum is not None:
        raise Interrupted(SIGNALS.signum)


def to_primitive(cfg: Any) -> Any:
    """DictConfig -> plain dict/list (resolved)."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg) else cfg


def make_runtime(cfg: DictConfig, run_dir: Path, *, job_type: str):
    """Build the :class:`Runtime` (device, precision, budget, logger) from ``cfg.trainer``/``cfg.logger``."""
    from sinsemi.generators.base import Runtime

    from sinsemi.validation import check_trainer

    tr = cfg.trainer
    check_trainer(to_primitive(tr))
    device, accel = resolve_device(tr.accelerator)
    ckpt = cfg.get("ckpt_path", "last")
    logger = make_logger(cfg, run_dir, job_type=job_type)
    rt = Runtime(
        device=device,
        precision=str(tr.precision),
        max_steps=tr.max_steps,
        progress=bool(tr.progress),
        logger=logger,
        log_every=int(tr.log_every),
        checkpoint_every=int(tr.checkpoint_every),
        detect_anomaly=bool(tr.get("detect_anomaly", False)),
        resume=ckpt is not None,  # "last" or a file (checked by validate_train)
        resume_from=None if ckpt in (None, "last") else str(Path(str(ckpt)).expanduser().resolve()),
        trainer_kwargs={"devices": tr.get("devices", 1), "accelerator": accel},
        callbacks=make_callbacks(cfg.get("callbacks"), logger=logger, progress=bool(tr.progress)),
    )
    log.debug("runtime: %s", rt)  # shown with hydra.verbose=sinsemi (debug=...)
    return rt


def make_callbacks(cbs_cfg: DictConfig | None, *, logger, progress: bool) -> list | None:
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
        if not isinstance(c, DictConfig) or "_target_" not in c:
            raise InputError(f"callbacks.{key} must be a config with a _target_ (a Lightning callback class), got {c!r}")
        try:
            cb = instantiate(c)
        except InstantiationException as e:
            raise InputError(f"callbacks.{key}: cannot build {c._target_}: {str(e).splitlines()[-1]}") from None
        if isinstance(cb, LearningRateMonitor) and logger is None:
            log.info("callbacks.%s (LearningRateMonitor) not used: no logger (logger=none)", key)
            continue
        if isinstance(cb, ProgressBar) and not progress:
            log.info("callbacks.%s (progress bar) not used: trainer.progress=false", key)
            continue
        out.append(cb)
    return out


def load_training_image(data_cfg: DictConfig):
    """The training image (C, H, W): ``data.image`` from disk, else the simulator preset's defect
    image; refused when over ``data.max_side``, constant, or (float) outside [0, 1]."""
    from sinsemi.data.io import MAX_SIDE, check_size, check_trainable, load_trainable

    max_side = data_cfg.get("max_side", MAX_SIDE)
    if data_cfg.get("image"):
        return load_trainable(data_cfg.image, max_side=max_side, name=f"data.image={data_cfg.image}")
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair(data_cfg.get("preset", "line_pair"), seed=int(data_cfg.get("preset_seed", 0)))
    return check_trainable(check_size(pair.defect, max_side, name="the simulated training image"))


def sampler_settings(cfg: DictConfig, generator: str) -> dict:
    """``cfg.sampler`` as a dict, plus the job's own flags the generator takes (allow_random_backbone)."""
    from sinsemi.generators.base import generator_class
    from sinsemi.validation import sampler_defaults

    settings = to_primitive(cfg.get("sampler")) or {}
    if cfg.get("allow_random_backbone") and "allow_random_backbone" in sampler_defaults(generator_class(generator)):
        settings["allow_random_backbone"] = True
    return settings


def draw_samples(gen, seeds: list[int], settings: dict):
    """(samples (N, C, H, W), the ``sample_info`` recorded with them: see
    :meth:`~sinsemi.generators.base.SampleOutput.sample_info`) from any generator."""
    out = gen.sample(seeds, **settings)
    return out.samples, out.sample_info()


def sampler_tag(settings: dict, n: int, seed_base: int) -> str:
    """A stable, self-describing folder name for a set of sampler settings."""
    parts = [f"{k}{v}" for k, v in sorted(settings.items()) if not isinstance(v, (dict, list))]
    parts += [f"n{n}", f"seed{seed_base}"]
    return "_".join(parts).replace("/", "-") or "default"


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __exit__(self, *exc):
        self.seconds = self.elapsed()


def preflight(argv: list[str]) -> None:
    """Checks before Hydra starts anything (Hydra creates the output dir before any job code runs):
    the output dirs named on the command line are writable, and SLURM answers when
    ``launcher=slurm`` is asked for."""
    from sinsemi.validation import check_writable_dir

    for a in argv:
        key, sep, value = a.lstrip("+").partition("=")
        if sep and key in ("hydra.run.dir", "hydra.sweep.dir") and value and "$" not in value and "," not in value:
            check_writable_dir(value, key)
    if any(a in ("launcher=slurm", "+launcher=slurm") for a in argv):
        from sinsemi.cli.callbacks import check_slurm

        check_slurm()
