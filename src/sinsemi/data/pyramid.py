"""Image pyramids (pure functions, no Lightning).

The SinDDM/SinSEMI rule (scale s = 0 is the coarsest, s = S-1 the image itself):

* coarsest short side  c = clamp(round(sqrt(area * short / long)), min_coarse, max_coarse)
  (area = 3000, clamp [42, 55]);
* number of scales     S = round(ln(short / c) / ln(scale_factor)) + 1;
* the factor is then recomputed, f = (short / c) ** (1 / (S - 1)), so the pyramid ends exactly at
  the image size; level s has short side round(c * f**s) and the long side in proportion.

96 x 96 with factor 1.4 gives 55, 73, 96.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sinsemi.errors import InputError


def pyramid_sizes(
    height: int,
    width: int,
    scale_factor: float = 1.4,
    *,
    area: float = 3000.0,
    min_coarse: int = 42,
    max_coarse: int = 55,
) -> list[tuple[int, int]]:
    """Sizes (h, w) of the pyramid levels, coarsest first, ending exactly at (height, width)."""
    if scale_factor <= 1.0:
        raise InputError(f"pyramid scale_factor must be > 1, got {scale_factor}")
    if min_coarse > max_coarse or min_coarse < 1:
        raise InputError(f"pyramid coarsest-size range is invalid: [{min_coarse}, {max_coarse}]")
    short, long_ = min(height, width), max(height, width)
    if short < min_coarse:
        raise InputError(
            f"image {height}x{width} is smaller than the coarsest pyramid level ({min_coarse} px on the short side)"
        )
    coarse = int(round(math.sqrt(area * short / long_)))
    coarse = max(min_coarse, min(max_coarse, coarse, short))
    n_scales = int(round(math.log(short / coarse) / math.log(scale_factor))) + 1 if short > coarse else 1
    if n_scales == 1:
        return [(height, width)]
    factor = (short / coarse) ** (1.0 / (n_scales - 1))
    sizes = []
    for s in range(n_scales - 1):
        sh = int(round(coarse * factor**s))
        sl = int(round(sh * long_ / short))
        sizes.append((sh, sl) if height <= width else (sl, sh))
    sizes.append((height, width))
    return sizes


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize (N, C, H, W) or (C, H, W) to ``size``; antialiased when downsampling."""
    squeeze = x.ndim == 3
    if squeeze:
        x = x[None]
    if tuple(x.shape[-2:]) == tuple(size):
        out = x
    else:
        down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=down and mode in ("bilinear", "bicubic"))
    return out[0] if squeeze else out


@dataclass(frozen=True)
class Pyramid:
    """The levels of one image, coarsest first.

    ``levels[s]``: (C, h_s, w_s) image at scale s; ``conditions[s]``: the conditioning image at
    scale s, i.e. ``levels[s-1]`` upsampled (bilinear) to (h_s, w_s); ``None`` at s = 0.
    """

    levels: tuple[torch.Tensor, ...]
    conditions: tuple[torch.Tensor | None, ...]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [tuple(lv.shape[-2:]) for lv in self.levels]

    @property
    def n_scales(self) -> int:
        return len(self.levels)


def build_pyramid(image: torch.Tensor, sizes: list[tuple[int, int]]) -> Pyramid:
    """Pyramid of a (C, H, W) image at ``sizes`` (coarsest first; the last is the image's size).

    Each level is resized (antialiased) from the full image; the conditioning image of scale s is
    level s-1 upsampled bilinearly.
    """
    if image.ndim != 3:
        raise InputError(f"build_pyramid needs a (C, H, W) image, got {tuple(image.shape)}")
    if tuple(sizes[-1]) != tuple(image.shape[-2:]):
        raise InputError(f"pyramid must end at the image size {tuple(image.shape[-2:])}, got {sizes[-1]}")
    levels = tuple(resize(image, tuple(sz)) for sz in sizes)
    conds = (None,) + tuple(resize(levels[s - 1], tuple(sizes[s])) for s in range(1, len(sizes)))
    return Pyramid(levels=levels, conditions=conds)
