"""The labelled evaluation grid (``eval_grid.png``): what a user looks at first.

Each tile is one image contrast-stretched to a fixed display range (the references' range: optical
images span a few gray levels and look flat grey on [0, 1]), upscaled ``scale`` x (nearest), with
every detection's outline drawn in red, the border band (where a generator's receptive field meets
the image edge) marked by a thin dashed yellow frame, and the per-image defect count in the tile's
top-left corner. PIL + scipy only; atomic write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

RED = (255, 40, 40)
YELLOW = (255, 210, 0)


def _tile(img: np.ndarray, mask: np.ndarray, lo: float, hi: float, scale: int, border: int) -> np.ndarray:
    """One (H, W) image and (H, W) bool mask -> (scale H, scale W, 3) uint8 RGB tile."""
    g = np.clip((img - lo) / (hi - lo), 0, 1)
    g = np.kron(g, np.ones((scale, scale)))
    rgb = np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    if border > 0:  # dashed frame at the border band's inner edge
        h, w = g.shape
        b = border * scale
        dash = (np.arange(max(h, w)) // (2 * scale)) % 2 == 0
        for y in (b, h - b - 1):
            rgb[y, b:w - b][dash[b:w - b]] = YELLOW
        for x in (b, w - b - 1):
            rgb[b:h - b, x][dash[b:h - b]] = YELLOW
    if mask.any():
        m = np.kron(mask.astype(np.uint8), np.ones((scale, scale), dtype=np.uint8)).astype(bool)
        edge = m & ~ndimage.binary_erosion(m, iterations=max(1, scale // 2), border_value=0)
        rgb[edge] = RED
    return rgb


def _wrap(text: str, font, width: int) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` px in ``font``."""
    lines, cur = [], ""
    for word in text.split():
        trial = f"{cur} {word}".strip()
        if cur and font.getlength(trial) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + ([cur] if cur else [])


def save_eval_grid(images: torch.Tensor, masks: torch.Tensor, counts: Sequence[int], path: str | os.PathLike, *,
                   value_range: tuple[float, float], border: int = 0, scale: int = 2, nrow: int | None = None,
                   names: Sequence[str] | None = None, title: str = "") -> None:
    """Write images (N, C, H, W) with their detection masks (N, H, W) and counts (N,) as one labelled
    PNG grid at ``path``. ``value_range`` maps to black..white; ``border`` (px) draws the border band."""
    from PIL import Image, ImageDraw, ImageFont

    from sinsemi.data.io import atomic_path

    x = images.detach().float().cpu().mean(dim=1).numpy()
    m = masks.detach().cpu().bool().numpy()
    n, h, w = x.shape
    nrow = nrow or max(1, int(np.ceil(np.sqrt(n))))
    ncol = int(np.ceil(n / nrow))
    pad = 4
    th, tw = h * scale, w * scale
    width = nrow * (tw + pad) + pad
    title_font = ImageFont.load_default(size=14)
    lines = _wrap(title, title_font, width - 2 * pad) if title else []
    head = 18 * len(lines) + 6 if lines else 0
    canvas = Image.new("RGB", (width, head + ncol * (th + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(12, 7 * scale))
    lo, hi = value_range
    for i in range(n):
        r, c = divmod(i, nrow)
        x0, y0 = pad + c * (tw + pad), head + pad + r * (th + pad)
        canvas.paste(Image.fromarray(_tile(x[i], m[i], lo, hi, scale, border)), (x0, y0))
        label = str(int(counts[i])) if names is None else f"{int(counts[i])}  {names[i]}"
        box = draw.textbbox((x0 + 3, y0 + 2), label, font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
        draw.text((x0 + 3, y0 + 2), label, fill=RED if int(counts[i]) else (255, 255, 255), font=font)
    for k, line in enumerate(lines):
        draw.text((pad, 4 + 18 * k), line, fill=(0, 0, 0), font=title_font)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
