"""Progress of long loops, in the log: ``<desc>: 12/64 samples (19%), 3.2/s, ETA 0:00:13``.

One helper for every loop that takes more than a few seconds (baseline sampling, the labeller over
many images, evaluation steps). A line goes to the log every ``every_s`` seconds (and every
``every_n`` items when set), and a summary line at the end when the loop took over ``quiet_s``; so a
captured log (CI, SLURM) gets a few lines, never a bar redrawn per item. On a terminal (stderr is a
tty) a tqdm bar shows instead of the periodic lines (once the loop has run ``quiet_s``).

Training loops pass their figures with each update (``p.update(loss=0.12, lr=1e-3)``): the line then
reads ``sinsemi fit: 120/1850 steps (6%), loss 0.12, lr 0.001, 3.2/s, ETA 0:09:01`` (the bar shows
them as its postfix). A resumed loop starts at ``initial``: its rate and ETA count only this run's items.
The lines go to the ``sinsemi.progress`` logger, so a job's log file (``train.log``) holds them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("sinsemi.progress")


def format_seconds(s: float) -> str:
    """``H:MM:SS`` (``M:SS`` under an hour)."""
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Count ``total`` items of a loop; log rate and ETA now and then.

    Use as ``with Progress(n, "gpnn sampling", unit="samples") as p: ... p.update()`` or through
    :func:`track`. ``enabled=False`` logs nothing (tests, nested loops). ``clock``: seconds, for tests.
    ``tty``: show a tqdm bar instead of lines (default: whether stderr is a terminal). ``initial``:
    items already done (a resumed loop).
    """

    def __init__(self, total: int, desc: str, *, unit: str = "items", every_s: float = 10.0, every_n: int | None = None,
                 quiet_s: float = 1.0, enabled: bool = True, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic, tty: bool | None = None, initial: int = 0):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.every_s, self.every_n, self.quiet_s = float(every_s), every_n, float(quiet_s)
        self.enabled, self.log, self.clock = enabled, logger or log, clock
        self.done = self.initial = int(initial)
        self.info: dict[str, float] = {}  # the loop's latest figures (loss, lr), shown in the line
        self.t0 = self._last_t = clock()
        self._last_n = self.done
        self._tty = enabled and (sys.stderr.isatty() if tty is None else tty)
        self._bar = None  # the tqdm bar, opened once the loop has run quiet_s (no flicker for quick loops)

    def line(self) -> str:
        """What the log says now, e.g. ``gpnn sampling: 12/64 samples (19%), 3.2/s, ETA 0:00:13``."""
        elapsed = self.clock() - self.t0
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total > 0 else ""
        eta = f", ETA {format_seconds((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else ""
        info = "".join(f", {k} {v:.4g}" for k, v in self.info.items())
        return f"{self.desc}: {self.done}/{self.total} {self.unit}{pct}{info}, {rate:.3g}/s{eta}"

    def update(self, n: int = 1, **info: float) -> None:
        """``n`` more items done; ``info``: the loop's latest figures (e.g. ``loss=0.12, lr=1e-3``)."""
        self.done += int(n)
        self.info.update({k: float(v) for k, v in info.items()})
        if not self.enabled:
            return
        now = self.clock()
        if self._tty:
            if self._bar is None and now - self.t0 >= self.quiet_s:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self.total, initial=self.done, desc=self.desc, unit=f" {self.unit}", leave=False,
                                 dynamic_ncols=True)
            elif self._bar is not None:
                self._bar.update(int(n))
            if self._bar is not None and info:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in self.info.items()}, refresh=False)
            return
        due = now - self._last_t >= self.every_s
        due = due or (self.every_n is not None and self.done - self._last_n >= self.every_n)
        if due and self.done < self.total:
            self.log.info(self.line())
            self._last_t, self._last_n = now, self.done

    def close(self) -> None:
        """The summary line (``desc: 64 samples in 1:02, 1.03/s``), unless the loop was quick."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elapsed = self.clock() - self.t0
        if elapsed >= self.quiet_s:
            rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
            info = "".join(f", {k} {v:.4g}" for k, v in self.info.items())
            self.log.info("%s: %d %s in %s%s, %.3g/s", self.desc, self.done - self.initial, self.unit,
                          format_seconds(elapsed), info, rate)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], desc: str, *, total: int | None = None, **kwargs) -> Iterator[T]:
    """Yield ``items``, counting each one in a :class:`Progress` (``total``: ``len(items)`` by default)."""
    n = len(items) if total is None else total  # type: ignore[arg-type]
    with Progress(n, desc, **kwargs) as p:
        for x in items:
            yield x
            p.update()


@contextlib.contextmanager
def stage(desc: str, *, logger: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic):
    """Log ``desc ...`` when a step of a longer job starts and ``desc: done in M:SS`` when it ends
    (e.g. the evaluation's SIFID/LPIPS, labeller and U-Net steps)."""
    lg = logger or log
    t0 = clock()
    lg.info("%s ...", desc)
    yield
    lg.info("%s: done in %s", desc, format_seconds(clock() - t0))
