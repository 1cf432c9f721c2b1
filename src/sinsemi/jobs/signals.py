"""SIGTERM / SIGINT during a job: :class:`~sinsemi.errors.Interrupted` (nothing half-written: every
write is atomic), or, inside a Lightning fit, a stop after the current step so the generator writes
its checkpoint on the way out (this reaches into Lightning's signal connector; Lightning's own
SIGTERM path exits without a checkpoint)."""

from __future__ import annotations

import contextlib
import logging
import signal

from sinsemi.errors import Interrupted

log = logging.getLogger("sinsemi")


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
