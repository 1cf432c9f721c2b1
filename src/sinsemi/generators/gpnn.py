"""GPNN: generative patch nearest neighbours (Granot et al., "Drop the GAN", CVPR 2022).

No training: ``fit`` keeps the image and its pyramid; each sample is built coarse to fine.

* Pyramid (coarsest first): level sizes ceil(H r^l), ceil(W r^l) for l = L-1 .. 0 with the
  downscale ratio r, each level resized (bicubic, antialiased) from the next finer
  (WeizmannVision/DropTheGAN ``gpnn.py`` ``make_pyramid``). The level count L is capped so the
  coarsest level keeps >= ``min_size`` px on its short side.
* Coarsest level: y = x_0 + sigma * z, z ~ N(0, I), then ``coarsest_iters`` passes of PNN with
  keys = values = the real coarsest level (``applications.py`` ``image_generation``).
* Finer level s: y <- up(y); ``iters_per_level`` passes of PNN with queries = patches of y, keys =
  patches of up(x_{s-1}) (the real image blurred like y), values = patches of x_s (``gpnn.py`` ``gpnn``).
* PNN: each query patch takes the value of the key minimising D(q, k) / (alpha + min_q' D(q', k))
  (D the patch MSE: the paper's normalised similarity score; alpha = inf / null: plain nearest
  neighbour); the chosen value patches are folded back by a Gaussian-weighted mean (``gpnn.py`` ``pnn``).

Defaults = the official generation recipe (``main.py`` ``generation`` and ``applications.py``
``image_generation``): 7x7 patches, alpha = inf (plain nearest neighbour), ratio 0.75, 9 downscales
(``levels`` = 10 with the image: 96 px -> 8, 10, 13, 18, 23, 31, 41, 54, 72, 96), 10 PNN passes per
finer level and 1 at the coarsest (``gpnn.py`` ``gpnn`` defaults), noise std 0.75 on the raw [0, 1]
intensities (``utils.py`` ``imread`` divides by 255; ``intensity: raw``). ``min_size`` = 7 (one patch)
only guards images too small for that rule; the official code has no such cap.

Variant ``retarget`` (this project's earlier settings, :data:`RETARGET`): alpha = 5e-3 (the
official default of ``main.py`` ``retargeting`` / ``structural_analogy``), at most 5 levels with a
coarsest short side >= 14 px (31 px at 96 px), and the image's [min, max] stretched to [0, 1]
(``intensity: minmax``, so that sigma and alpha act on a low-contrast image as on a natural one).
Sample i draws its noise from its own ``torch.Generator`` (the rest is deterministic).

Runs in float32 whatever ``runtime.precision`` (nearest-neighbour choices and sorts are exact
operations that low precision would change); ``runtime.max_steps`` is ignored (nothing is trained):
the cost knob is the sampler setting ``iters_per_level``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from sinsemi.data.pyramid import resize
from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, SampleOutput, check_seeds
from sinsemi.generators.common.patches import (DEFAULT_CHUNK_ELEMENTS, RangeMap, extract_patches, fold_patches,
                                               normalized_nearest_neighbours)
from sinsemi.generators.common.training_free import TrainingFreeGenerator
from sinsemi.progress import track
from sinsemi.seeding import generators_for

#: The ``retarget`` variant (the settings this project used before following the official generation
#: recipe): constructor params and sampler settings that differ from the defaults. On the command
#: line: ``generator.levels=5 generator.min_size=14 generator.intensity=minmax sampler.alpha=0.005``.
RETARGET = {"generator": {"levels": 5, "min_size": 14, "intensity": "minmax"}, "sampler": {"alpha": 5e-3}}


def gpnn_pyramid_sizes(height: int, width: int, *, levels: int, ratio: float, min_size: int) -> list[tuple[int, int]]:
    """GPNN's pyramid sizes, coarsest first, ending at (height, width).

    Level l (0 = the image) is (ceil(H r^l), ceil(W r^l)); at most ``levels`` levels, fewer when
    the coarsest would fall under ``min_size`` px on its short side.
    """
    if not 0.0 < ratio < 1.0:
        raise InputError(f"gpnn: downscale_ratio must be in (0, 1), got {ratio}")
    if levels < 1:
        raise InputError(f"gpnn: levels must be >= 1, got {levels}")
    if min(height, width) < min_size:
        raise InputError(
            f"gpnn: image {height}x{width} is too small: its pyramid needs at least {min_size} px on the short "
            f"side (min_size; the {min_size}-px coarsest level must hold several patches)"
        )
    sizes = []
    for lvl in range(levels):
        h, w = math.ceil(height * ratio**lvl), math.ceil(width * ratio**lvl)
        if min(h, w) < min_size:
            break
        sizes.append((h, w))
    return sizes[::-1]


def pnn(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, patch_size: int, alpha: float | None,
        max_elements: int = DEFAULT_CHUNK_ELEMENTS) -> torch.Tensor:
    """One patch-nearest-neighbour pass: (C, h, w) query image -> (C, h, w) image of value patches.

    ``key``, ``value``: (C, hk, wk) images whose patches correspond one to one.
    """
    q = extract_patches(query[None], patch_size)[0]
    k = extract_patches(key[None], patch_size)[0]
    v = extract_patches(value[None], patch_size)[0]
    nn_ = normalized_nearest_neighbours(q, k, alpha, max_elements=max_elements)
    return fold_patches(v[nn_.indices][None], tuple(query.shape[-2:]), patch_size)[0]


class GPNN(TrainingFreeGenerator):
    """Generative patch nearest neighbours; see the module docstring.

    Params: ``patch_size`` (7), ``downscale_ratio`` (0.75), ``levels`` (max pyramid levels incl.
    the image, 10), ``min_size`` (coarsest short side, px, 7), ``intensity`` ("raw" | "minmax"),
    ``max_elements`` (distance-matrix chunk, elements). Sampler settings: ``noise_std`` (0.75),
    ``alpha`` (None = inf = plain NN), ``iters_per_level`` (10), ``coarsest_iters`` (1).
    """

    name = "gpnn"
    working_range = (0.0, 1.0)

    def __init__(self, runtime: Runtime | None = None, *, patch_size: int = 7, downscale_ratio: float = 0.75,
                 levels: int = 10, min_size: int = 7, intensity: str = "raw",
                 max_elements: int = DEFAULT_CHUNK_ELEMENTS) -> None:
        if patch_size < 1 or min_size < patch_size:
            raise InputError(f"gpnn: need 1 <= patch_size <= min_size, got patch_size={patch_size}, min_size={min_size}")
        super().__init__(runtime, {"patch_size": int(patch_size), "downscale_ratio": float(downscale_ratio), "levels": int(levels),
                                   "min_size": int(min_size), "intensity": str(intensity), "max_elements": int(max_elements)})
        self.patch_size = int(patch_size)

    # ------------------------------------------------------------------ pyramid (fit/save/load: base class)
    def _set_image(self, image: torch.Tensor, range_map: RangeMap) -> None:
        p = self.params
        sizes = gpnn_pyramid_sizes(*image.shape[-2:], levels=p["levels"], ratio=p["downscale_ratio"], min_size=p["min_size"])
        self.image, self.range_map = image, range_map
        x = range_map.forward(image).to(self.runtime.device)
        levels = [x]
        for size in reversed(sizes[:-1]):  # each level resized from the next finer one
            levels.append(resize(levels[-1], size, mode="bicubic"))
        self.levels = levels[::-1]

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, seeds: Sequence[int], *, noise_std: float = 0.75, alpha: float | None = None,
               iters_per_level: int = 10, coarsest_iters: int = 1, **unknown: Any) -> SampleOutput:
        """One sample per seed, ``samples`` (len(seeds), C, H, W) in the image's scale; sample i uses
        only ``seeds[i]``. No net: ``nfe`` is None; nothing is clamped."""
        if unknown:
            raise InputError(f"gpnn: unknown sampler setting(s) {sorted(unknown)}")
        seeds = check_seeds(seeds)
        self._check_fitted()
        if noise_std < 0 or iters_per_level < 0 or coarsest_iters < 0:
            raise InputError("gpnn: noise_std, iters_per_level and coarsest_iters must be >= 0")
        out = []
        for g in track(generators_for(seeds, device=self.runtime.device), f"{self.name} sampling", unit="samples",
                       enabled=self.runtime.progress):
            y = self._generate(g, noise_std=float(noise_std), alpha=alpha, iters=int(iters_per_level),
                               coarsest_iters=int(coarsest_iters))
            out.append(self.range_map.inverse(y).cpu())
        return SampleOutput(samples=torch.stack(out).float())

    def _generate(self, g: torch.Generator, *, noise_std: float, alpha: float | None, iters: int,
                  coarsest_iters: int) -> torch.Tensor:
        """One sample on the working scale (C, H, W)."""
        k, chunk = self.patch_size, self.params["max_elements"]
        x0 = self.levels[0]
        y = x0 + noise_std * torch.randn(x0.shape, generator=g, device=x0.device, dtype=x0.dtype)
        for _ in range(coarsest_iters):
            y = pnn(y, x0, x0, patch_size=k, alpha=alpha, max_elements=chunk)
        for s in range(1, len(self.levels)):
            size = tuple(self.levels[s].shape[-2:])
            y = resize(y, size, mode="bicubic")
            blurred = resize(self.levels[s - 1], size, mode="bicubic")
            for _ in range(iters):
                y = pnn(y, blurred, self.levels[s], patch_size=k, alpha=alpha, max_elements=chunk)
        return y
