"""A wall-clock timer for the job's phases (``with Timer() as t: ...; t.seconds``)."""

from __future__ import annotations

import time


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __exit__(self, *exc):
        self.seconds = self.elapsed()
