"""Sampling that streams to disk in batches and resumes from the samples already finished.

``draw_to_disk`` draws ``seeds`` ``batch`` at a time. Each finished batch is committed at once:
its float32 pixels (one atomic ``<out_dir>/.parts/batch-<first>.npz``), then each sample's 8-bit
``<i>.png``, so a kill loses at most the batch in flight, and the rerun draws only the samples no
committed batch holds. Sample i draws all its randomness from seed ``seeds[i]`` (see
:mod:`sinsemi.seeding`), so it is the same whether it was drawn before or after a kill: the finished
set is byte-identical to one drawn in one go. At the end the grid and ``samples.npz`` (written last:
its presence means the set is complete) are written exactly as :func:`sinsemi.data.io.save_samples`
writes them, and ``.parts/`` is removed.

Memory: the generator holds one batch at a time; the final bundle (one float32 array of every
sample, the format every reader of a samples dir expects) is assembled from the parts at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

PARTS = ".parts"


def _finished(out_dir: Path) -> dict[int, tuple[np.ndarray, dict | None]]:
    """Sample index -> (float32 pixels, its batch's sample_info) of every batch an earlier attempt finished."""
    done: dict[int, tuple[np.ndarray, dict | None]] = {}
    for p in sorted((out_dir / PARTS).glob("batch-*.npz")):
        with np.load(p, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            for k, i in enumerate(z["index"].tolist()):
                done[int(i)] = (z["images"][k], info if k == 0 else None)  # the batch's info counted once
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


def draw_to_disk(gen, seeds: Sequence[int], settings: dict, out_dir: str | os.PathLike, batch: int, *,
                 meta: dict | None = None, value_range=(0.0, 1.0), grid_path: str | os.PathLike | None = None,
                 grid_range=None) -> tuple[torch.Tensor, dict | None]:
    """Draw sample i = ``gen.sample([seeds[i]], **settings)`` for every i not finished in ``out_dir``,
    ``batch`` at a time; write PNGs as they finish, then the grid and ``samples.npz`` (with ``seeds``,
    ``meta`` and the merged ``sample_info``). ``grid_range``: a (lo, hi) or None for the samples'
    :func:`~sinsemi.data.io.display_range`. Returns (samples (N, C, H, W), sample_info).

    Each batch is committed whole (one atomic ``.parts/batch-<first>.npz``: indices, pixels, its
    sample_info), so a resumed set counts every batch's facts once. Batches are aligned on multiples
    of ``batch`` (sample i is in batch i // batch), so a resumed set with the same ``batch`` draws
    exactly the batches a set drawn in one go draws: a generator whose float rounding depends on the
    batch (oneDNN blocking) still gives the same bits. Another ``batch`` on resume is allowed (the
    samples then agree up to that rounding). An earlier attempt with another generator, settings or
    seeds (``.parts/request.json``) is refused. The caller holds the out_dir's lock
    (:func:`sinsemi.runlock.run_lock`)."""
    from sinsemi.data.io import atomic_path, display_range, ensure_dir, save_bundle, save_grid, save_json, save_png
    from sinsemi.validation import check_number

    batch = check_number("batch", batch, integer=True)
    seeds = [int(s) for s in seeds]
    out_dir = ensure_dir(out_dir)
    ensure_dir(out_dir / PARTS)
    request = json.loads(json.dumps({"generator": getattr(gen, "name", None), "settings": settings, "seeds": seeds}))
    req_path = out_dir / PARTS / "request.json"
    if req_path.exists() and json.loads(req_path.read_text()) != request:
        from sinsemi.errors import InputError

        raise InputError(f"{out_dir} holds unfinished samples of another request (generator, sampler settings or seeds "
                         f"differ: {req_path}): rerun with the same settings, or choose another out_dir")
    save_json(request, req_path)
    done = _finished(out_dir)
    todo = [[i for i in range(b, min(b + batch, len(seeds))) if i not in done] for b in range(0, len(seeds), batch)]

    def png(i: int, img: np.ndarray) -> None:
        x = torch.from_numpy(img)
        save_png(x if x.shape[0] in (1, 3) else x[:1], out_dir / f"{i:05d}.png", value_range=value_range)

    for idx in (t for t in todo if t):
        out = gen.sample([seeds[i] for i in idx], **settings)
        x = out.samples.detach().float().cpu().numpy()
        info = out.sample_info()
        with atomic_path(out_dir / PARTS / f"batch-{idx[0]:05d}.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, index=np.asarray(idx), images=x, info=json.dumps(info))
        for j, i in enumerate(idx):
            png(i, x[j])
            done[i] = (x[j], info if j == 0 else None)
    for i, (img, _) in done.items():  # a kill between a batch and its PNGs
        if not (out_dir / f"{i:05d}.png").exists():
            png(i, img)
    samples = torch.from_numpy(np.stack([done[i][0] for i in range(len(seeds))]))
    info = _merge_info([done[i][1] for i in range(len(seeds))])
    save_grid(samples[: min(len(seeds), 64)], grid_path or (out_dir / "grid.png"),
              value_range=grid_range or display_range(samples))
    save_bundle(samples, out_dir / "samples.npz", seeds=seeds, value_range=list(value_range),
                **{**(meta or {}), "sample_info": info})
    shutil.rmtree(out_dir / PARTS, ignore_errors=True)
    return samples, info
