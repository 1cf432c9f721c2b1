"""sinsemi.progress: a log line with rate and ETA every every_s seconds / every_n items, a summary at
the end, nothing for quick loops or when disabled (a fake clock: no sleeping)."""

from __future__ import annotations

import logging

import pytest

from sinsemi.progress import Progress, format_seconds, stage, track


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sinsemi.progress"]


def test_format_seconds():
    assert format_seconds(0) == "0:00"
    assert format_seconds(59.6) == "1:00"
    assert format_seconds(3 * 3600 + 62) == "3:01:02"


def test_lines_every_few_seconds_with_rate_and_eta(caplog, clock):
    caplog.set_level(logging.INFO, logger="sinsemi.progress")
    with Progress(40, "gpnn sampling", unit="samples", every_s=10, clock=clock, tty=False) as p:
        for _ in range(40):
            clock.t += 1.0  # 1 item/s
            p.update()
    got = lines(caplog)
    # at 10, 20, 30 s (not at 40: the summary says it), then the summary
    assert got[:3] == ["gpnn sampling: 10/40 samples (25%), 1/s, ETA 0:30",
                       "gpnn sampling: 20/40 samples (50%), 1/s, ETA 0:20",
                       "gpnn sampling: 30/40 samples (75%), 1/s, ETA 0:10"]
    assert got[3:] == ["gpnn sampling: 40 samples in 0:40, 1/s"]


def test_every_n_items_and_updates_of_many(caplog, clock):
    caplog.set_level(logging.INFO, logger="sinsemi.progress")
    with Progress(64, "sinddm sampling", unit="samples", every_s=1e9, every_n=16, clock=clock, tty=False) as p:
        for _ in range(4):
            clock.t += 8.0
            p.update(16)  # a chunk of 16 samples
    got = lines(caplog)
    assert got[0] == "sinddm sampling: 16/64 samples (25%), 2/s, ETA 0:24"
    assert len(got) == 4 and got[-1].startswith("sinddm sampling: 64 samples in 0:32")


def test_quick_or_disabled_loops_say_nothing(caplog, clock):
    caplog.set_level(logging.INFO, logger="sinsemi.progress")
    with Progress(5, "quick", clock=clock, quiet_s=1.0, tty=False) as p:
        for _ in range(5):
            clock.t += 0.1
            p.update()
    with Progress(5, "off", clock=clock, every_s=0.0, enabled=False, tty=False) as p:
        for _ in range(5):
            clock.t += 100.0
            p.update()
    assert lines(caplog) == []
    assert p.done == 5  # still counted


def test_track_yields_every_item_and_counts(caplog, clock):
    caplog.set_level(logging.INFO, logger="sinsemi.progress")
    seen = []
    for x in track([3, 1, 2], "labeller", unit="images", clock=clock, quiet_s=0.0, tty=False):
        clock.t += 2.0
        seen.append(x)
    assert seen == [3, 1, 2]
    assert lines(caplog) == ["labeller: 3 images in 0:06, 0.5/s"]


def test_stage_logs_start_and_duration(caplog, clock):
    caplog.set_level(logging.INFO, logger="sinsemi.progress")
    with stage("eval x: SIFID", clock=clock):
        clock.t += 75.0
    assert lines(caplog) == ["eval x: SIFID ...", "eval x: SIFID: done in 1:15"]


def test_baseline_sampling_reports_progress(caplog, monkeypatch):
    """GPNN's sampling loop goes through the helper (a log line per sample with every_n=1)."""
    import torch

    import sinsemi.progress as P
    from sinsemi.generators.base import Runtime
    from sinsemi.generators.gpnn import GPNN

    caplog.set_level(logging.INFO, logger="sinsemi.progress")
    real = P.Progress.__init__

    def every_item(self, total, desc, **kw):
        real(self, total, desc, **{**kw, "every_n": 1, "quiet_s": 0.0, "tty": False})

    monkeypatch.setattr(P.Progress, "__init__", every_item)
    g = torch.Generator().manual_seed(0)
    gen = GPNN(runtime=Runtime(progress=True), levels=2, min_size=14)
    gen.fit(torch.rand(1, 24, 24, generator=g), seed=0)
    gen.sample([0, 1, 2], iters_per_level=1)
    got = [ln for ln in lines(caplog) if ln.startswith("gpnn sampling")]
    assert [ln.split(",")[0] for ln in got[:2]] == ["gpnn sampling: 1/3 samples (33%)", "gpnn sampling: 2/3 samples (67%)"]
    assert len(got) == 3 and got[-1].startswith("gpnn sampling: 3 samples in"), got


def test_resumed_loop_counts_only_its_own_items_and_shows_loss(caplog, clock):
    caplog.set_level(logging.INFO, logger="sinsemi.progress")
    with Progress(40, "sinsemi fit", unit="steps", every_s=10, clock=clock, tty=False, initial=20) as p:
        for k in range(20):
            clock.t += 1.0
            p.update(loss=0.5 / (k + 1), lr=1e-3)
    got = lines(caplog)
    assert got[0] == "sinsemi fit: 30/40 steps (75%), loss 0.05, lr 0.001, 1/s, ETA 0:10"
    assert got[-1] == "sinsemi fit: 20 steps in 0:20, loss 0.025, lr 0.001, 1/s"
