"""Segmentation test sets with exact masks.

* :func:`paper_test_set` - the paper's recipe: 2 n images from the two reference images by noise
  and flips; n from the defect image (its mask flipped alike), n from the defect-free one (empty
  masks). Image i: one of the four flips (identity, left-right, up-down, 180° rotation) and additive
  Gaussian noise of std ~ U(0, ``noise_std``) gray levels (the published augmentations: up to 1 gray
  level), re-quantised to 8 bits; all drawn from seed ``seed + i``.
* :func:`random_defect_test_set` - harder: simulator images of a preset's scene, each with its own
  layout randomness and noise and 0-3 defects (bridges and opens by default) at random lines,
  positions and lengths, drawn from seed ``seed + i``.
* :func:`new_places_test_set` - the training image's own defect type at new, structure-consistent
  places, 0-3 per image: for a simulator preset, its defect kind(s) through
  :func:`random_defect_test_set` (exact masks); for any other pair, :func:`pasted_defect_test_set`
  (the reference's aligned defect residual pasted along the same line spaces).

Masks by convention (``mask``): ``footprint`` = the simulator's geometric footprint / the given
mask; ``optical`` = the paper's labelling (:mod:`sinsemi.metrics.optical_mask`): the region where the
5x5-blurred defect image differs from its defect-free twin by > 5 gray levels (~200 px for the bridge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sinsemi.data.layouts import Bridge, LineSpace, Open, Particle
from sinsemi.data.optics import ReferencePair, get_preset, make_reference_pair, simulate_batch
from sinsemi.errors import InputError
from sinsemi.seeding import generators_for

FLIPS = ("none", "lr", "ud", "lrud")


@dataclass(frozen=True)
class TestSet:
    """``images`` (N, C, H, W) float32 in [0, 1], ``masks`` (N, H, W) bool, ``names`` (N), ``meta``
    per image (list of N JSON-serialisable dicts) and ``info`` (how the set was made)."""

    __test__ = False  # not a pytest class

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    meta: list[dict]
    info: dict

    def __len__(self) -> int:
        return self.images.shape[0]


def _flip(x: torch.Tensor, flip: str) -> torch.Tensor:
    dims = {"none": (), "lr": (-1,), "ud": (-2,), "lrud": (-2, -1)}[flip]
    return x.flip(dims) if dims else x


def _check_mask(mask: str) -> None:
    from sinsemi.metrics.optical_mask import MASKS

    if mask not in MASKS:
        raise InputError(f"mask convention must be one of {', '.join(MASKS)}, got {mask!r}")


def paper_test_set(pair: ReferencePair | None = None, *, preset: str = "line_pair", seed: int = 0,
                   n_per_class: int = 25, noise_std: float = 1.0, mask: str = "footprint") -> TestSet:
    """2 ``n_per_class`` images from a reference pair (default: ``make_reference_pair(preset, seed)``)
    by one flip each and additive Gaussian noise of std ~ U(0, ``noise_std``) gray levels (then 8-bit
    quantised). The first ``n_per_class`` come from the defect image, the rest from the defect-free
    one; the defect image's mask is ``pair.mask`` (``footprint``) or the paper's optical mask."""
    _check_mask(mask)
    if n_per_class < 1:
        raise InputError(f"n_per_class must be >= 1, got {n_per_class}")
    if noise_std < 0:
        raise InputError(f"noise_std must be >= 0 gray levels, got {noise_std}")
    pair = pair if pair is not None else make_reference_pair(preset, seed)
    if tuple(pair.mask.shape) != tuple(pair.defect.shape[-2:]):
        raise InputError(f"reference mask {tuple(pair.mask.shape)} does not match its image {tuple(pair.defect.shape[-2:])}")
    images, masks, names, meta = [], [], [], []
    if mask == "optical":
        from sinsemi.metrics.optical_mask import optical_mask

        dmask = optical_mask(pair.defect, pair.clean)
    else:
        dmask = pair.mask.bool()
    sources = [("defect", pair.defect, dmask), ("clean", pair.clean, torch.zeros_like(dmask))]
    gens = generators_for([seed + i for i in range(2 * n_per_class)])
    for c, (label, img, src_mask) in enumerate(sources):
        for j in range(n_per_class):
            i = c * n_per_class + j
            g = gens[i]
            flip = FLIPS[int(torch.randint(len(FLIPS), (1,), generator=g))]
            std = noise_std * float(torch.rand(1, generator=g))
            noisy = img + (std / 255.0) * torch.randn(img.shape, generator=g)
            noisy = torch.round(noisy.clamp(0, 1) * 255.0) / 255.0
            images.append(_flip(noisy, flip))
            masks.append(_flip(src_mask, flip))
            names.append(f"paper_{label}_{j:03d}")
            meta.append({"source": label, "flip": flip, "seed": seed + i, "noise_std_gray": std})
    info = {"kind": "paper", "n_per_class": n_per_class, "noise_std_max_gray": noise_std, "seed": seed, "mask": mask,
            "reference": pair.meta.get("preset", "given pair")}
    return TestSet(images=torch.stack(images), masks=torch.stack(masks), names=names, meta=meta, info=info)


def random_defect_test_set(n: int = 50, *, preset: str = "line_pair", seed: int = 0, max_defects: int = 3,
                           kinds: Sequence[str] = ("bridge", "open"), length_nm: tuple[float, float] = (30.0, 80.0),
                           margin_nm: float = 60.0, mask: str = "footprint") -> TestSet:
    """``n`` simulator images of ``preset``'s scene; image i has k ~ U{0..max_defects} defects of
    random kinds, lines, positions along the lines (at least ``margin_nm`` from the field's edge)
    and lengths in ``length_nm``, drawn from seed ``seed + i`` (layout and noise too). ``optical``
    masks apply the paper's rule to each image's noise-free defect residual (its defect-free twin:
    same layout seed, no defects)."""
    _check_mask(mask)
    if n < 1:
        raise InputError(f"test-set size n must be >= 1, got {n}")
    if max_defects < 0:
        raise InputError(f"max_defects must be >= 0, got {max_defects}")
    unknown = sorted(set(kinds) - {"bridge", "open", "particle"})
    if unknown or not kinds:
        raise InputError(f"defect kinds must be a non-empty subset of bridge, open, particle; got {list(kinds)}")
    p = get_preset(preset)
    layout, fov = p.scene.layout, p.scene.fov
    if not isinstance(layout, LineSpace) and set(kinds) - {"particle"}:
        raise InputError(f"preset {preset!r} has no lines: use kinds=('particle',)")
    h_nm, w_nm = fov.height_px * fov.pixel_nm, fov.width_px * fov.pixel_nm
    along_nm, across_nm = (h_nm, w_nm) if getattr(layout, "orientation", "vertical") == "vertical" else (w_nm, h_nm)
    if isinstance(layout, LineSpace):
        # lines whose centre and whose right neighbour's centre both lie inside the field
        lines = [j for j, c in layout.line_centres_nm(across_nm, 0.0) if 0 <= c and c + layout.pitch_nm < across_nm]
    seeds = [seed + i for i in range(n)]
    defects = []
    for g in generators_for(seeds):
        k = int(torch.randint(max_defects + 1, (1,), generator=g))
        dl = []
        for _ in range(k):
            kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
            u = torch.rand(3, generator=g, dtype=torch.float64).tolist()
            length = length_nm[0] + u[1] * (length_nm[1] - length_nm[0])
            if kind == "particle":
                r = 0.5 * length
                dl.append(Particle(x_nm=r + u[0] * (w_nm - 2 * r), y_nm=r + u[2] * (h_nm - 2 * r), radius_nm=r,
                                   amplitude=float(layout.feature)))
                continue
            along = margin_nm + u[0] * (along_nm - 2 * margin_nm)
            line = lines[int(u[2] * len(lines)) % len(lines)]
            dl.append(Bridge(line=line, along_nm=along, length_nm=length) if kind == "bridge"
                      else Open(line=line, along_nm=along, length_nm=length))
        defects.append(dl)
    b = simulate_batch(p.scene, defects, seeds)
    masks = b.masks
    if mask == "optical":
        masks = optical_masks_of_batch(p.scene, b, seeds)
    meta = [{"seed": s, "noise_seed": ns, "defects": d} for s, ns, d in zip(b.seeds, b.noise_seeds, b.defects)]
    info = {"kind": "random", "preset": preset, "n": n, "seed": seed, "max_defects": max_defects, "kinds": list(kinds),
            "length_nm": list(length_nm), "margin_nm": margin_nm, "mask": mask, **b.meta}
    return TestSet(images=b.images, masks=masks, names=[f"random_{i:04d}" for i in range(n)], meta=meta, info=info)


def _sensor_residual(scene, defect_intensity: torch.Tensor, clean_intensity: torch.Tensor) -> torch.Tensor:
    """(N, H, W) noise-free intensities -> the sensor's mean-level difference (N, H, W), charge-diffused."""
    import torch.nn.functional as F

    sensor = scene.sensor
    diff = (sensor.mean_level(defect_intensity) - sensor.mean_level(clean_intensity))[:, None].float()
    k = sensor.diffusion_kernel()
    if k is not None:  # the sensor blurs the photon image (periodically) before read-out
        r = k.shape[-1] // 2
        diff = F.conv2d(F.pad(diff, (r, r, r, r), mode="circular"), k)
    return diff[:, 0]


def optical_masks_of_batch(scene, batch, seeds: Sequence[int]) -> torch.Tensor:
    """The paper's optical masks (N, H, W) of a simulated batch, from each image's noise-free residual."""
    from sinsemi.metrics.optical_mask import optical_mask_of_residual

    clean = simulate_batch(scene, None, list(seeds))
    resid = _sensor_residual(scene, batch.intensity, clean.intensity)
    return torch.stack([optical_mask_of_residual(r) if m.any() else torch.zeros_like(m) for r, m in zip(resid, batch.masks)])


@dataclass(frozen=True)
class DefectResidual:
    """What a defect adds to an image: ``residual`` (H, W) float (image scale, noise-free: the
    sensor's mean level of the defect image minus that of its defect-free twin, with the sensor's
    charge diffusion), the exact ``mask`` (H, W) bool and its ``centroid`` (y, x) px."""

    residual: torch.Tensor
    mask: torch.Tensor
    centroid: tuple[float, float]


def defect_residual(preset: str = "line_pair", seed: int = 0, defects: Sequence | None = None) -> DefectResidual:
    """The noise-free residual of ``defects`` (default: the preset's own) in ``preset``'s scene
    (layout randomness from ``seed``): add it to an image of the same structure to insert a defect."""
    p = get_preset(preset)
    dl = list(p.defects if defects is None else defects)
    if not dl:
        raise InputError(f"preset {preset!r} has no defect to take a residual of; pass defects=")
    b = simulate_batch(p.scene, [dl, []], [seed, seed])
    diff = _sensor_residual(p.scene, b.intensity[:1], b.intensity[1:])
    yy, xx = torch.nonzero(b.masks[0], as_tuple=True)
    return DefectResidual(residual=diff[0], mask=b.masks[0].clone(), centroid=(float(yy.float().mean()), float(xx.float().mean())))


KIND_NAMES = {Bridge: "bridge", Open: "open", Particle: "particle"}


def new_places_test_set(pair: ReferencePair, n: int = 100, *, preset: str | None = None, seed: int = 0, max_defects: int = 3,
                        mask: str = "optical") -> TestSet:
    """``n`` images with 0..``max_defects`` defects of the training image's own type at random,
    structure-consistent places. ``preset`` (the pair is that simulator preset's): the preset's
    defect kind(s) by :func:`random_defect_test_set` with exact masks; None: the pair's own defect
    residual pasted by :func:`pasted_defect_test_set`."""
    if preset is not None:
        kinds = sorted({KIND_NAMES[type(d)] for d in get_preset(preset).defects})
        if not kinds:
            raise InputError(f"preset {preset!r} has no defect: no type to place at new places")
        t = random_defect_test_set(n, preset=preset, seed=seed, max_defects=max_defects, kinds=kinds, mask=mask)
        return TestSet(images=t.images, masks=t.masks, names=[f"new_places_{i:04d}" for i in range(n)], meta=t.meta,
                       info={**t.info, "kind": "new_places", "source": "simulator"})
    return pasted_defect_test_set(pair, n, seed=seed, max_defects=max_defects, mask=mask)


def pasted_defect_test_set(pair: ReferencePair, n: int = 100, *, seed: int = 0, max_defects: int = 3, mask: str = "optical",
                           noise_std: float = 1.0, margin_px: int = 2, tries: int = 50) -> TestSet:
    """New places for any reference pair with line structure (vertical or horizontal lines).

    The defect's residual R = defect - clean (the pair is pixel-aligned, as the paper's) is kept on a
    window W: the defect's region (``pair.mask`` ∪ the paper's optical region) dilated by
    ``margin_px`` and tapered by a sigma-1 Gaussian. Image i (seed ``seed + i``) is the clean
    reference with k ~ U{0..max_defects} copies of R·W pasted without overlap at
    (dy, round(m p)) from the defect's own place: dy any row offset that keeps the window inside,
    m an integer and p the line period of the clean reference's column profile (the same line
    spaces, the reference's own sensor noise in the residual). Then, as the paper's set, one of
    four flips and Gaussian noise of std ~ U(0, ``noise_std``) gray levels, 8-bit quantised.
    Masks: ``footprint`` = ``pair.mask`` moved with each copy; ``optical`` = the paper's rule
    (|blur(image) - blur(clean)| > 5 gray levels, components > 100 px, circularity > 0.6) on the
    pasted residuals.
    """
    import numpy as np
    from scipy import ndimage

    from sinsemi.data.linestats import period_px
    from sinsemi.metrics.labeller import line_orientation
    from sinsemi.metrics.optical_mask import optical_mask, optical_mask_of_residual

    _check_mask(mask)
    if n < 1 or max_defects < 0:
        raise InputError(f"test-set size n must be >= 1 and max_defects >= 0, got {n}, {max_defects}")
    defect, clean, fmask = pair.defect.float(), pair.clean.float(), pair.mask.bool()
    if not fmask.any():
        raise InputError("new-places test set: the defect reference's mask is empty (nothing to paste)")
    gray = clean.double().mean(0).numpy()
    transpose = line_orientation(gray) != "vertical"
    if transpose:  # work with vertical lines, turn the results back at the end
        defect, clean, fmask, gray = defect.transpose(-1, -2), clean.transpose(-1, -2), fmask.T, gray.T
    h, w = fmask.shape
    period = float(period_px(gray * 255.0))
    region = fmask.numpy() | optical_mask(defect, clean).numpy()
    window = ndimage.binary_dilation(region, iterations=int(margin_px))
    taper = np.clip(ndimage.gaussian_filter(window.astype(np.float64), 1.0) * 2.0, 0.0, 1.0)
    ys, xs = np.nonzero(taper > 1e-3)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    bh, bw = y1 - y0, x1 - x0
    if bh >= h or bw >= w:
        raise InputError("new-places test set: the defect's window covers the whole image (no other place to put it)")
    patch = (defect - clean)[:, y0:y1, x0:x1] * torch.from_numpy(taper[y0:y1, x0:x1]).float()
    fpatch = fmask[y0:y1, x0:x1]
    shifts_x = sorted({int(round(m * period)) for m in range(-int(w // period) - 1, int(w // period) + 2)
                       if 0 <= x0 + int(round(m * period)) <= w - bw})
    images, masks, names, meta = [], [], [], []
    for i, g in enumerate(generators_for([seed + j for j in range(n)])):
        k = int(torch.randint(max_defects + 1, (1,), generator=g))
        img, resid = clean.clone(), torch.zeros_like(clean)
        foot = torch.zeros(h, w, dtype=torch.bool)
        taken = torch.zeros(h, w, dtype=torch.bool)
        placed = []
        for _ in range(k):
            for _ in range(tries):
                dx = shifts_x[int(torch.randint(len(shifts_x), (1,), generator=g))]
                ny = int(torch.randint(h - bh + 1, (1,), generator=g))
                nx = x0 + dx
                if not taken[ny:ny + bh, nx:nx + bw].any():
                    break
            else:
                continue  # no free place left for this copy
            taken[ny:ny + bh, nx:nx + bw] = True
            resid[:, ny:ny + bh, nx:nx + bw] += patch
            foot[ny:ny + bh, nx:nx + bw] |= fpatch
            placed.append({"dy": ny - y0, "dx": dx, "periods": round(dx / period, 3)})
        img = img + resid
        m = (optical_mask_of_residual(resid) if placed else torch.zeros_like(foot)) if mask == "optical" else foot
        flip = FLIPS[int(torch.randint(len(FLIPS), (1,), generator=g))]
        std = noise_std * float(torch.rand(1, generator=g))
        img = torch.round((img + (std / 255.0) * torch.randn(img.shape, generator=g)).clamp(0, 1) * 255.0) / 255.0
        img, m = _flip(img, flip), _flip(m, flip)
        if transpose:
            img, m = img.transpose(-1, -2), m.T
        images.append(img)
        masks.append(m.clone())
        names.append(f"new_places_{i:04d}")
        meta.append({"seed": seed + i, "flip": flip, "noise_std_gray": std, "placed": placed})
    info = {"kind": "new_places", "source": "pasted residual", "n": n, "seed": seed, "max_defects": max_defects, "mask": mask,
            "period_px": period, "window": [y0, y1, x0, x1], "noise_std_max_gray": noise_std,
            "orientation": "horizontal" if transpose else "vertical", "reference": pair.meta.get("preset", "given pair")}
    return TestSet(images=torch.stack(images), masks=torch.stack(masks), names=names, meta=meta, info=info)
