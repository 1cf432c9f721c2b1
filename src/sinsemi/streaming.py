"""Sampling that streams to disk in batches and resumes from the samples already finished.

``draw_to_disk`` draws ``seeds`` ``batch`` at a time. Each finished batch is committed at once:
its float32 pixels (one atomic ``<out_dir>/.parts/batch-<first>.npz``), then each sample's 8-bit
``<i>.png``, so a kill loses at most the batch in flight, and the rerun draws only the samples no
committed batch holds. Sample i draws all its randomness from seed ``seeds[i]`` (see
:mod:`sinsemi.seeding`), so it is the same whether it was drawn before or after a kill: the finished
set is byte-identical to one drawn in one go. At the end the grid and ``samples.npz`` (written last:
its presence means the set is complete) are written exactly as :func:`sinsemi.data.io.save_samples`
writes them, and ``.parts/`` is removed.

Memory: flat in N. The generator holds one batch at a time; the end reads the parts back one at a
time: the grid takes the first 64 samples, its display range 10^6 pixels (the same ones
:func:`~sinsemi.data.io.display_range` picks), and ``samples.npz`` is deflated part by part
(:func:`~sinsemi.data.io.write_bundle`). What still grows with N: the permutation that picks those
pixels (4 bytes a pixel, as display_range's own, freed before the bundle) and the list of seeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

PARTS = ".parts"
#: display_range's sample of a set's pixels (sinsemi.data.io.display_range: its 1_000_000)
_RANGE_PIXELS = 1_000_000

log = logging.getLogger("sinsemi.sampling")


def _part_files(out_dir: Path) -> list[Path]:
    """The committed batches, in sample order (by their first index, not by name: 100000 > 99999)."""
    parts = (out_dir / PARTS).glob("batch-*.npz")
    return sorted(parts, key=lambda p: int(p.stem.split("-")[1]))


def _read_part(path: Path) -> tuple[list[int], np.ndarray, dict | None]:
    """(sample indices, float32 pixels (n, C, H, W), the batch's sample_info) of one committed batch."""
    with np.load(path, allow_pickle=False) as z:
        return [int(i) for i in z["index"].tolist()], z["images"], json.loads(str(z["info"]))


def _part_info(path: Path) -> dict | None:
    """The sample_info of one committed batch (its pixels are not read)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["info"]))


def _finished(out_dir: Path) -> dict[int, Path]:
    """Sample index -> the committed batch file holding it (an index only: no pixels in memory)."""
    done: dict[int, Path] = {}
    for p in _part_files(out_dir):
        with np.load(p, allow_pickle=False) as z:
            done.update((int(i), p) for i in z["index"].tolist())
    return done


def _merge_info(infos: list[dict | None]) -> dict | None:
    """One ``sample_info`` for the whole set: ``clamped_pixels`` summed over the batches, every
    other entry the batches' common value (they are per-sample facts: nfe, the sampler used)."""
    infos = [i for i in infos if i is not None]
    if not infos:
        return None
    out = dict(infos[0])
    if any("clamped_pixels" in i for i in infos):
        out["clamped_pixels"] = int(sum(int(i.get("clamped_pixels") or 0) for i in infos))
    return out


def _in_order(done: dict[int, Path], n: int) -> Iterator[tuple[int, np.ndarray]]:
    """(i, sample i (C, H, W)) for i = 0 .. n-1, reading one committed batch at a time."""
    path, rows = None, {}
    for i in range(n):
        if done[i] != path:
            path = done[i]
            idx, images, _ = _read_part(path)
            rows = {j: images[k] for k, j in enumerate(idx)}
        yield i, rows[i]


def _display_range(done: dict[int, Path], n: int, q: float = 0.005) -> tuple[float, float]:
    """:func:`sinsemi.data.io.display_range` of the whole set (N, C, H, W), bit for bit, reading one
    batch at a time: the same pixels (its seeded permutation; int32 gives the same one, at half the
    memory) and quantile's result does not depend on their order."""
    per = None
    for _, x in _in_order(done, 1):
        per = x.size
    numel = n * per
    if numel <= _RANGE_PIXELS:
        flat = torch.from_numpy(np.concatenate([x.reshape(-1) for _, x in _in_order(done, n)])).float()
    else:
        dtype = torch.int32 if numel < 2**31 else torch.int64
        pick = torch.randperm(numel, generator=torch.Generator().manual_seed(0), dtype=dtype)[:_RANGE_PIXELS]
        pick = np.sort(pick.numpy().astype(np.int64))  # the permutation itself is freed here
        bounds = np.searchsorted(pick, np.arange(n + 1, dtype=np.int64) * per)
        flat = torch.from_numpy(np.concatenate([x.reshape(-1)[pick[bounds[i]:bounds[i + 1]] - i * per]
                                                for i, x in _in_order(done, n)])).float()
    lo, hi = torch.quantile(flat, torch.tensor([q, 1 - q])).tolist()
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


@contextlib.contextmanager
def _own_progress(gen) -> Iterator[bool]:
    """The generator's own progress bar off while it draws batch by batch (one bar a batch would be
    noise); yields whether it was on, for the set's one bar."""
    rt = getattr(gen, "runtime", None)
    was = bool(getattr(rt, "progress", False))
    if rt is not None and was:
        rt.progress = False
    try:
        yield was
    finally:
        if rt is not None and was:
            rt.progress = True


def draw_to_disk(gen, seeds: Sequence[int], settings: dict, out_dir: str | os.PathLike, batch: int, *,
                 meta: dict | None = None, value_range=(0.0, 1.0), grid_path: str | os.PathLike | None = None,
                 grid_range=None) -> dict | None:
    """Draw sample i = ``gen.sample([seeds[i]], **settings)`` for every i not finished in ``out_dir``,
    ``batch`` at a time; write PNGs as they finish, then the grid and ``samples.npz`` (with ``seeds``,
    ``meta`` and the merged ``sample_info``). ``grid_range``: a (lo, hi) or None for the samples'
    :func:`~sinsemi.data.io.display_range`. Returns the set's sample_info; the samples (N, C, H, W)
    are in ``samples.npz`` (:func:`~sinsemi.data.io.load_bundle`), never all in memory here.

    Each batch is committed whole (one atomic ``.parts/batch-<first>.npz``: indices, pixels, its
    sample_info), so a resumed set counts every batch's facts once. Batches are aligned on multiples
    of ``batch`` (sample i is in batch i // batch), so a resumed set with the same ``batch`` draws
    exactly the batches a set drawn in one go draws: a generator whose float rounding depends on the
    batch (oneDNN blocking) still gives the same bits. Another ``batch`` on resume is allowed (the
    samples then agree up to that rounding). An earlier attempt with another generator, settings or
    seeds (``.parts/request.json``) is refused. The caller holds the out_dir's lock
    (:func:`sinsemi.runlock.run_lock`)."""
    from sinsemi.data.io import ensure_dir, save_grid, save_json, write_bundle
    from sinsemi.progress import Progress
    from sinsemi.validation import check_number

    batch = check_number("batch", batch, integer=True)
    seeds = [int(s) for s in seeds]
    out_dir = ensure_dir(out_dir)
    check_request(out_dir, getattr(gen, "name", None), settings, seeds)
    ensure_dir(out_dir / PARTS)
    save_json(_request(getattr(gen, "name", None), settings, seeds), out_dir / PARTS / "request.json")
    done = _finished(out_dir)
    todo = [[i for i in range(b, min(b + batch, len(seeds))) if i not in done] for b in range(0, len(seeds), batch)]
    if done:  # the evidence a resume reused them (tests read it; a user sees what a kill cost)
        log.info("reusing %d finished samples in %s; drawing the other %d", len(done), out_dir, len(seeds) - len(done))

    def png(i: int, img: np.ndarray) -> None:
        _save_png(img, out_dir / f"{i:05d}.png", value_range)

    with _own_progress(gen) as bar_on, Progress(len(seeds), f"{getattr(gen, 'name', 'generator')} sampling", unit="samples",
                                                 enabled=bar_on, initial=len(done)) as bar:
        for idx in (t for t in todo if t):
            out = gen.sample([seeds[i] for i in idx], **settings)
            x = out.samples.detach().float().cpu().numpy()
            _commit(out_dir / PARTS / f"batch-{idx[0]:05d}.npz", idx, x, out.sample_info())
            for j, i in enumerate(idx):
                png(i, x[j])
                done[i] = out_dir / PARTS / f"batch-{idx[0]:05d}.npz"
            bar.update(len(idx))
            _test_pause_after_batch(len(done), len(seeds))
    for i, img in _in_order(done, len(seeds)):  # a kill between a batch and its PNGs
        if not (out_dir / f"{i:05d}.png").exists():
            png(i, img)
    info = _merge_info([_part_info(p) for p in _part_files(out_dir)])
    _test_pause_before_grid(out_dir)
    head = np.stack([x for _, x in _in_order(done, min(len(seeds), 64))])  # the grid: the first 64 samples
    save_grid(torch.from_numpy(head), grid_path or (out_dir / "grid.png"),
              value_range=grid_range or _display_range(done, len(seeds)))
    write_bundle(out_dir / "samples.npz", (len(seeds), *head.shape[1:]), (x[None] for _, x in _in_order(done, len(seeds))),
                 seeds=seeds, value_range=list(value_range), **{**(meta or {}), "sample_info": info})
    shutil.rmtree(out_dir / PARTS, ignore_errors=True)
    return info


def _test_pause_before_grid(out_dir: Path) -> None:
    """save_samples' test hook (``$SINSEMI_TEST_PAUSE_BEFORE_GRID``): a kill after every PNG, before
    the grid and the bundle."""
    from sinsemi.data.io import PAUSE_BEFORE_GRID, _test_pause, _test_pause_seconds

    pause = _test_pause_seconds(PAUSE_BEFORE_GRID)
    if pause:
        _test_pause(pause, f"before the grid of {out_dir}")


def _request(generator: str | None, settings: dict, seeds: list[int]) -> dict:
    """What a set of samples is drawn from, as JSON reads it back."""
    return json.loads(json.dumps({"generator": generator, "settings": settings, "seeds": seeds}))


def check_request(out_dir: str | os.PathLike, generator: str | None, settings: dict, seeds: Sequence[int]) -> None:
    """Refuse an ``out_dir`` holding unfinished samples (an attempt killed mid-set) of another
    generator, sampler settings or seeds: resuming would mix two sets. Cheap: run it before any work."""
    from sinsemi.errors import InputError

    req_path = Path(out_dir) / PARTS / "request.json"
    if req_path.exists() and json.loads(req_path.read_text()) != _request(generator, settings, [int(s) for s in seeds]):
        raise InputError(f"{out_dir} holds unfinished samples of another request (generator, sampler settings or seeds "
                         f"differ: {req_path}): rerun with the same settings, or choose another out_dir")


def _commit(path: Path, idx: list[int], images: np.ndarray, info: dict | None) -> None:
    """One finished batch, atomically: indices, pixels (n, C, H, W) float32, its sample_info."""
    from sinsemi.data.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, index=np.asarray(idx), images=images, info=json.dumps(info))


def _save_png(img: np.ndarray, path: Path, value_range) -> None:
    """Sample (C, H, W) as save_samples writes it (its first channel when C is not 1 or 3)."""
    from sinsemi.data.io import save_png

    x = torch.from_numpy(img)
    save_png(x if x.shape[0] in (1, 3) else x[:1], path, value_range=value_range)


#: test hook (tests/test_kill.py only): ``"<fraction>:<seconds>"`` (e.g. ``0.9:120``) pauses once, for
#: that many seconds, after the batch that takes the set to that fraction of its samples (all of
#: it committed: pixels and PNGs), printing ``PAUSE_MARKER after <k> of <n> samples`` to stderr:
#: a kill in the pause lands late in the drawing. Unset (always, outside tests) it costs nothing.
PAUSE_AFTER_BATCHES = "SINSEMI_TEST_PAUSE_AFTER_BATCHES"
_paused = False


def _test_pause_after_batch(n_done: int, n: int) -> None:
    """The test hook's pause, once a process, after the batch that reaches its fraction."""
    global _paused
    value = os.environ.get(PAUSE_AFTER_BATCHES, "")
    if not value or _paused:
        return
    from sinsemi.data.io import _test_pause
    from sinsemi.errors import InputError

    try:
        frac, seconds = (float(v) for v in value.split(":"))
    except ValueError:
        raise InputError(f"{PAUSE_AFTER_BATCHES} must be <fraction>:<seconds>, got {value!r}") from None
    if n_done >= frac * n:
        _paused = True
        _test_pause(seconds, f"after {n_done} of {n} samples")
