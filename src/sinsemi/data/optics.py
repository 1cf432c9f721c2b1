"""The optical simulator: layout -> partially coherent aerial image -> sensor, with exact defect masks.

    raster  = rasterize(layout, defects)          (sinsemi.data.layouts, >= 4x oversampled)
    I       = Imager(optics, field)(raster)       (sinsemi.data.imaging, Abbe, pixel-integrated)
    image   = sensor.expose(I)                    (sinsemi.data.sensor)

:func:`simulate` makes one image, :func:`simulate_batch` many (one raster/imaging pass per chunk,
imaging matrices built once per (optics, field) and cached). Image i's layout randomness comes from
``seeds[i]`` and its sensor noise from ``noise_seeds[i]`` (default: a sub-stream of ``seeds[i]``),
so an image is the same whatever the batch. :func:`make_reference_pair` gives a preset's defect
image, its defect-free twin (same layout, independent noise) and the exact mask.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sinsemi.data.imaging import Imager, Optics
from sinsemi.data.layouts import (MASK_COVERAGE, Bridge, ContactHoles, Defect, FieldOfView, LineSpace, Open,
                                  Particle, SramCell, rasterize)
from sinsemi.data.presets import PRESETS, Preset, get_preset
from sinsemi.data.scene import Scene
from sinsemi.data.sensor import Sensor
from sinsemi.errors import InputError
from sinsemi.seeding import generators_for

__all__ = [
    "Bridge", "ContactHoles", "FieldOfView", "LineSpace", "Open", "Optics", "PRESETS", "Particle", "Preset",
    "ReferencePair", "Scene", "Sensor", "SimBatch", "SimResult", "SramCell", "get_preset", "make_reference_pair",
    "simulate", "simulate_batch",
]

MASK_RULE = (f"a pixel is defect when >= {MASK_COVERAGE:.0%} of its oversampled subpixels lie in the defect footprint "
             "(where the defect layout differs from the defect-free layout)")
CHUNK = 64  # images per raster/imaging pass (bounds memory: 64 x (4*96)^2 floats)


@dataclass(frozen=True)
class SimResult:
    """One simulated image: ``image`` (1, H, W) float32 in [0, 1] (8-bit scale: gray / 255),
    ``mask`` (H, W) bool exact defect mask, ``intensity`` (H, W) noise-free pixel intensity
    (clear field = 1), ``meta`` every parameter (JSON-serialisable)."""

    image: torch.Tensor
    mask: torch.Tensor
    intensity: torch.Tensor
    meta: dict


@dataclass(frozen=True)
class SimBatch:
    """N simulated images: ``images`` (N, 1, H, W), ``masks`` (N, H, W) bool, ``intensity`` (N, H, W),
    ``meta`` shared parameters, ``defects`` per image (list of dicts), the seeds used."""

    images: torch.Tensor
    masks: torch.Tensor
    intensity: torch.Tensor
    meta: dict
    defects: list[list[dict]]
    seeds: list[int]
    noise_seeds: list[int]


@dataclass(frozen=True)
class ReferencePair:
    """A preset's reference pair: ``defect`` (1, H, W) and ``clean`` (1, H, W) float32 in [0, 1]
    (same layout, independent sensor noise), ``mask`` (H, W) bool exact defect mask of ``defect``,
    ``meta`` every parameter (JSON-serialisable)."""

    defect: torch.Tensor
    clean: torch.Tensor
    mask: torch.Tensor
    meta: dict


def noise_seed_for(seed: int, stream: int = 1) -> int:
    """An independent seed for sub-stream ``stream`` of ``seed`` (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)[0] % (2**63 - 1))


@functools.lru_cache(maxsize=16)
def imager_for(optics: Optics, fov: FieldOfView, binning: int = 1) -> Imager:
    """The imaging matrices of (optics, field, detector binning), built once and cached."""
    return Imager(optics, fov, binning)


def simulate_batch(scene: Scene, defects: Sequence[Sequence[Defect]] | None, seeds: Sequence[int],
                   noise_seeds: Sequence[int] | None = None, *, chunk: int = CHUNK) -> SimBatch:
    """Simulate ``len(seeds)`` images of ``scene``; image i has ``defects[i]`` (None: no defects),
    layout randomness from ``seeds[i]`` and sensor noise from ``noise_seeds[i]``."""
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    if n == 0:
        raise InputError("simulate_batch needs at least one seed")
    defects = [list(d) for d in defects] if defects is not None else [[] for _ in range(n)]
    if len(defects) != n:
        raise InputError(f"need one defect list per seed: {len(defects)} lists for {n} seeds")
    noise_seeds = [noise_seed_for(s) for s in seeds] if noise_seeds is None else [int(s) for s in noise_seeds]
    if len(noise_seeds) != n:
        raise InputError(f"need one noise seed per seed: {len(noise_seeds)} for {n}")
    imager = imager_for(scene.optics, scene.fov, scene.sensor.binning)
    images, masks, inten = [], [], []
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        raster = rasterize(scene.layout, scene.fov, defects[sl], generators_for(seeds[sl]), keep_clean=False)
        intensity = imager(raster.defect)  # (b, H / binning, W / binning)
        images.append(scene.sensor.expose(intensity, generators_for(noise_seeds[sl])))
        masks.append(raster.mask)
        inten.append(scene.sensor.resample(intensity[:, None])[:, 0])
    meta = {"scene": scene.to_dict(), "mask_rule": MASK_RULE, "n_source_points": imager.n_source,
            "band_coefficients": list(imager.band)}
    return SimBatch(images=torch.cat(images), masks=torch.cat(masks), intensity=torch.cat(inten), meta=meta,
                    defects=[[dataclasses.asdict(d) for d in dl] for dl in defects], seeds=seeds, noise_seeds=noise_seeds)


def simulate(scene: Scene | None = None, defects: Sequence[Defect] = (), seed: int = 0,
             noise_seed: int | None = None) -> SimResult:
    """One image of ``scene`` (default: a plain line/space scene) with ``defects``."""
    scene = scene or Scene()
    b = simulate_batch(scene, [list(defects)], [seed], None if noise_seed is None else [noise_seed])
    meta = {**b.meta, "defects": b.defects[0], "seed": b.seeds[0], "noise_seed": b.noise_seeds[0]}
    return SimResult(image=b.images[0], mask=b.masks[0], intensity=b.intensity[0], meta=meta)


def make_reference_pair(preset: str = "line_pair", seed: int = 0, **overrides: dict) -> ReferencePair:
    """The preset's defect image, its defect-free twin (same layout: same ``seed``; independent
    noise: sub-streams 1 and 2 of ``seed``) and the exact mask. ``overrides`` change scene
    parameters, e.g. ``sensor={"photon_budget": 500}``."""
    p = get_preset(preset)
    scene = p.scene.replace(**overrides) if overrides else p.scene
    ns = [noise_seed_for(seed, 1), noise_seed_for(seed, 2)]
    b = simulate_batch(scene, [list(p.defects), []], [seed, seed], ns)
    meta = {"preset": p.name, "description": p.description, "seed": int(seed), "noise_seed_defect": ns[0],
            "noise_seed_clean": ns[1], "defects": b.defects[0], **b.meta, "shape": list(b.images.shape[1:])}
    return ReferencePair(defect=b.images[0], clean=b.images[1], mask=b.masks[0], meta=meta)
