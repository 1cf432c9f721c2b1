"""The one error path of every CLI: :func:`task` around the Hydra task function, :func:`cli_main`
around Hydra (pre-Hydra checks, the sweep summary, the exit code). The work is in :mod:`sinsemi.jobs`."""

from __future__ import annotations

import functools
import logging
import sys

from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from sinsemi.errors import InputError, Interrupted
from sinsemi.jobs.signals import interruptible
from sinsemi.jobs.sweep import last_sweep_dir, record_outcome, sweep_summary

log = logging.getLogger("sinsemi")


class SweepPointFailed(CompactHydraException):
    """A multirun job whose input was bad: Hydra records the failed job and goes on with the sweep."""


def task(fn):
    """Wrap a Hydra task function (the one ``@hydra.main`` calls): the one error path of every CLI.

    Single run: an :class:`InputError` becomes one ``error: ...`` line on stderr and exit 2.
    Multirun: the job's outcome is recorded and the error raised, so Hydra marks the job failed and
    runs the other points; :func:`cli_main` prints which points failed. SIGTERM/SIGINT become
    :class:`Interrupted` (see :func:`sinsemi.jobs.signals.interruptible`)."""

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig):
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from sinsemi.cli._argv import quiet_other_ranks

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        point = (hc.sweep.dir, hc.job.num, hc.overrides.task) if multirun else None
        quiet_other_ranks()
        try:
            with interruptible():
                out = fn(cfg)
        except InputError as e:
            if not multirun:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(2)
            record_outcome(*point, "failed", str(e), input_error=True)
            log.error("sweep point %s failed: %s", " ".join(hc.overrides.task), e)
            raise SweepPointFailed(f"error: sweep point [{' '.join(hc.overrides.task)}] failed: {e}") from None
        except Exception as e:
            if multirun:
                record_outcome(*point, "failed", f"{type(e).__name__}: {e}")
            raise
        if multirun:
            record_outcome(*point, "done")
        return out

    return wrapper


def _exit_on_failed_points() -> None:
    line, bad_input = sweep_summary(last_sweep_dir())
    if line:
        print(line, file=sys.stderr)
        sys.exit(2 if bad_input else 1)


def cli_main(hydra_main, argv_hook=None) -> None:
    """The console entry of every CLI: pre-Hydra checks, Hydra, then the sweep summary and exit code.

    A DDP rank > 0 that Lightning's launcher started by re-running the command line gets Hydra's
    ``none`` job logging: no ``<job name>.log`` of its own in the run dir, rank 0's log is the log."""
    from sinsemi.cli._argv import preflight
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
        if e.code not in (None, 0, 2):
            _exit_on_failed_points()
        raise
    _exit_on_failed_points()  # a launcher that returned without raising on a failed job
