"""Samples of any generator from disk: a dir of images, a run dir (its ``samples/``) or a .npz bundle."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from sinsemi.errors import InputError

log = logging.getLogger("sinsemi.eval")


@dataclass
class SampleSet:
    """``images`` (N, C, H, W) float, their ``names``, the ``run_dir`` (when given one) and a default row name."""

    images: torch.Tensor
    names: list[str]
    run_dir: Path | None
    name: str


def resolve_samples(samples_dir: str | Path | None, n: int | None = None) -> SampleSet:
    """Load the first ``n`` (None: all) samples of ``samples_dir``."""
    from sinsemi.data.io import load_samples

    if not samples_dir:
        raise InputError("samples_dir= is required (a dir of images, a run dir or a .npz bundle), or use mode=reference")
    path = Path(samples_dir)
    if not path.exists():
        raise InputError(f"samples not found: {path}")
    # a folder's whole name: a re-sampled folder is named by its settings ("..._guidance1.0"), and
    # Path.stem would cut it at the last dot; a bundle file's name without its ".npz"
    run_dir, name = None, (path.stem if path.is_file() else path.name)
    if path.is_dir() and (path / "samples").is_dir():
        run_dir, path = path, path / "samples"
        name = run_name(run_dir)
    if n is not None and int(n) <= 0:
        raise InputError(f"n must be positive, got {n}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, names = load_samples(path, limit=None if n is None else int(n))
    for w in caught:
        log.warning("%s", w.message)
    return SampleSet(images.float(), names, run_dir, name)


def run_name(run_dir: Path) -> str:
    """The generator named in ``run_dir/config.yaml``, else the folder's name."""
    cfg = run_dir / "config.yaml"
    if cfg.exists():
        import yaml

        try:
            name = ((yaml.safe_load(cfg.read_text()) or {}).get("generator") or {}).get("name")
            if name:
                return str(name)
        except Exception:  # a foreign config: fall back to the folder name
            pass
    return run_dir.name
