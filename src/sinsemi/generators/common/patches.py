"""Patch operations shared by the patch-based generators (GPNN, GPDM): pure tensor maths.

Conventions: an image batch is (N, C, H, W); its k x k patches (stride 1, no padding) are a
(N, L, D) tensor with L = (H - k + 1)(W - k + 1) patches in raster order and D = C k^2 values
ordered like :func:`torch.nn.functional.unfold` (channel-major, then row, then column).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sinsemi.errors import InputError
from sinsemi.generators.base import clamp_counted

#: float32 distances one block of a distance matrix may hold (4 MiB): small blocks stay in cache
#: and measured faster than large ones; memory stays bounded whatever the image size.
DEFAULT_CHUNK_ELEMENTS = 1 << 20


# ----------------------------------------------------------------------------- unfold / fold
def extract_patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """All ``size`` x ``size`` patches of ``x`` (N, C, H, W) -> (N, L, C size^2)."""
    return F.unfold(x, size).transpose(1, 2)


def gaussian_patch_weights(size: int, std: float = 1.7, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Separable Gaussian weights (size, size) over patch coordinates in [-1, 1].

    GPNN's fold weights: exp(-u^2 / 2 std^2) exp(-v^2 / 2 std^2) with u, v = linspace(-1, 1, size);
    std 1.7 gives a gentle fall-off (corner weight ~0.71) that favours patch centres.
    """
    u = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (u / std) ** 2)
    return g[:, None] * g[None, :]


def fold_patches(
    patches: torch.Tensor, image_size: tuple[int, int], size: int, *, weight_std: float | None = 1.7
) -> torch.Tensor:
    """Inverse of :func:`extract_patches` by (weighted) averaging: (N, L, C size^2) -> (N, C, H, W).

    Every pixel is the weighted mean of the values the overlapping patches give it, each patch
    weighting its pixels by :func:`gaussian_patch_weights` (``weight_std=None``: plain mean).
    """
    n, l, d = patches.shape
    c = d // (size * size)
    if c * size * size != d:
        raise ValueError(f"patch vectors of length {d} do not hold {size}x{size} patches")
    if weight_std is None:
        w = patches.new_ones(size * size)
    else:
        w = gaussian_patch_weights(size, weight_std, device=patches.device, dtype=patches.dtype).flatten()
    cols = patches.transpose(1, 2) * w.repeat(c)[None, :, None]
    num = F.fold(cols, image_size, size)
    den = F.fold(w[None, :, None].expand(1, size * size, l), image_size, size)
    return num / den


# ----------------------------------------------------------------------------- nearest neighbours
@dataclass(frozen=True)
class NearestNeighbours:
    """For each query: ``indices`` (Lq,) of its nearest key and the (scored) ``distances`` (Lq,)."""

    indices: torch.Tensor
    distances: torch.Tensor


def patch_mse(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between every query (Lq, D) and key (Lk, D) -> (Lq, Lk).

    Expanded as (|q|^2 + |k|^2 - 2 q.k) / D: one matrix product (clamped at 0 against round-off).
    """
    d = torch.addmm((keys * keys).sum(1)[None, :], queries, keys.T, beta=1.0, alpha=-2.0)
    d.add_((queries * queries).sum(1)[:, None]).clamp_(min=0.0)
    return d.div_(queries.shape[-1])


def _chunk_rows(n_rows: int, n_cols: int, max_elements: int) -> int:
    return max(1, min(n_rows, max_elements // max(1, n_cols)))


def _argmin_rows(d: torch.Tensor, key_scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, values) of the row minima of s_j d_ij (modifies the fresh block d)."""
    if key_scale is not None:
        d = d.mul_(key_scale[None, :])  # d is a fresh block: scale in place
    v, i = d.min(dim=1)
    return i, v


def nearest_neighbours(
    queries: torch.Tensor,
    keys: torch.Tensor,
    *,
    key_scale: torch.Tensor | None = None,
    max_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> NearestNeighbours:
    """argmin_j  s_j * MSE(q_i, k_j)  for each query (Lq, D) over keys (Lk, D).

    ``key_scale`` (Lk,): per-key factor s_j (default 1). The distance matrix is built in blocks of
    queries so that at most ``max_elements`` distances exist at once.
    """
    rows = _chunk_rows(queries.shape[0], keys.shape[0], max_elements)
    idx, dist = [], []
    for start in range(0, queries.shape[0], rows):
        i, v = _argmin_rows(patch_mse(queries[start : start + rows], keys), key_scale)
        idx.append(i)
        dist.append(v)
    return NearestNeighbours(indices=torch.cat(idx), distances=torch.cat(dist))


def normalized_nearest_neighbours(
    queries: torch.Tensor,
    keys: torch.Tensor,
    alpha: float | None,
    *,
    max_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> NearestNeighbours:
    """GPNN's completeness-normalised search (Granot et al. 2022, the normalised similarity score).

    score(q_i, k_j) = D(q_i, k_j) / (alpha + min_l D(q_l, k_j)), D the patch MSE: a key already
    close to some query scores worse for every other query, so more keys get used. ``alpha`` None
    or inf: plain nearest neighbours. Two blocked passes: keys -> queries for the normaliser,
    then queries -> keys for the scored search.
    """
    if alpha is None or math.isinf(alpha):
        return nearest_neighbours(queries, keys, max_elements=max_elements)
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    closest_query = nearest_neighbours(keys, queries, max_elements=max_elements).distances  # (Lk,)
    return nearest_neighbours(queries, keys, key_scale=1.0 / (alpha + closest_query), max_elements=max_elements)


# ----------------------------------------------------------------------------- working scale
@dataclass
class RangeMap:
    """Affine map of per-channel values [vmin, vmax] onto [lo, hi], undone on samples.

    The patch methods' constants (GPNN's noise std 0.75 and alpha, GPDM's noise std 1.5 and lr)
    were tuned on natural images that fill [0, 1] or [-1, 1]; a low-contrast optical image uses a
    tenth of that range, so by default it is stretched to the range the constants assume.
    vmin, vmax: (C,).
    """

    vmin: torch.Tensor
    vmax: torch.Tensor
    lo: float = 0.0
    hi: float = 1.0
    clamp: bool = False  # inverse clamps to [lo, hi] first (the GAN codes' ``denorm``)

    @classmethod
    def fit(cls, image: torch.Tensor, intensity: str, lo: float, hi: float, *, clamp: bool = False) -> "RangeMap":
        """From a (C, H, W) image. ``intensity``: "minmax" (the image's own per-channel
        [min, max] -> [lo, hi]) or "raw" ([0, 1], the scale 8/16-bit images load in -> [lo, hi],
        as the official codes do)."""
        c = image.shape[0]
        if intensity == "minmax":
            flat = image.detach().float().flatten(1)
            return cls(vmin=flat.min(1).values.cpu(), vmax=flat.max(1).values.cpu(), lo=float(lo), hi=float(hi), clamp=clamp)
        if intensity == "raw":
            return cls(vmin=torch.zeros(c), vmax=torch.ones(c), lo=float(lo), hi=float(hi), clamp=clamp)
        raise InputError(f"intensity must be 'minmax' or 'raw', got {intensity!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(C, H, W) or (N, C, H, W) in the image's scale -> the working scale."""
        vmin, vmax = self._b(self.vmin, x), self._b(self.vmax, x)
        return self.lo + (x - vmin) / (vmax - vmin) * (self.hi - self.lo)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Working scale -> the image's scale."""
        return self.inverse_counted(y)[0]

    def inverse_counted(self, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        """:meth:`inverse` and how many values of ``y`` it clamped (0 without ``clamp``)."""
        vmin, vmax = self._b(self.vmin, y), self._b(self.vmax, y)
        clamped = 0
        if self.clamp:
            y, clamped = clamp_counted(y, self.lo, self.hi)
        return vmin + (y - self.lo) / (self.hi - self.lo) * (vmax - vmin), clamped

    @staticmethod
    def _b(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, 1) if x.ndim == 3 else (1, -1, 1, 1)
        return v.to(x.device, x.dtype).view(shape)

    def state_dict(self) -> dict:
        return {"vmin": self.vmin.clone(), "vmax": self.vmax.clone(), "lo": self.lo, "hi": self.hi, "clamp": self.clamp}

    @classmethod
    def from_state(cls, state: Mapping) -> "RangeMap":
        return cls(vmin=state["vmin"].float(), vmax=state["vmax"].float(), lo=float(state["lo"]), hi=float(state["hi"]),
                   clamp=bool(state.get("clamp", False)))
