"""Mask layouts and programmable defects, rasterised on an oversampled grid.

Coordinates are in nm. The field of view is ``height_px x width_px`` pixels of ``pixel_nm``; the
raster has ``oversample`` x ``oversample`` (>= 4) subpixels per pixel (plus an optional guard band
of ``guard_px`` pixels on every side that the imaging crops away). Subpixel (i, j) has its centre at
((i + 0.5) s, (j + 0.5) s), s = pixel_nm / oversample, from the field's top-left corner.

A raster holds the (real) amplitude transmittance or reflectance of the mask: every layout has a
``feature`` amplitude (lines, contact holes, cell shapes) on a ``background`` amplitude.
Line/space rasters are area-weighted across the lines (a subpixel cut by an edge gets the covered
fraction of its width, so edges are not quantised to the subpixel grid); contact holes, the SRAM
cell and the defects are point-sampled at subpixel centres.

Defects change the layout; their footprint and mask are exact:

* ``footprint`` (subpixels) = where the defect layout differs from the defect-free one
  (amplitude change > 1e-6): the added (bridge, particle) or removed (open) geometry;
* ``mask`` (pixels)        = pixels with >= 50 % of their subpixels in the footprint.

Random layout variation (line-edge roughness, line placement, hole size) is drawn from one
``torch.Generator`` per image, so image i is the same whatever the batch it is drawn in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sinsemi.errors import InputError

MASK_COVERAGE = 0.5  # a pixel is defect when >= this fraction of its subpixels is defect footprint


# ----------------------------------------------------------------------------- field of view
@dataclass(frozen=True)
class FieldOfView:
    """The simulated field: ``height_px x width_px`` pixels of ``pixel_nm``, rasterised with
    ``oversample`` subpixels per pixel side; ``guard_px`` pixels of margin are simulated and cropped
    (the imaging is periodic over the simulated field, so use a guard when the layout is not)."""

    height_px: int = 96
    width_px: int = 96
    pixel_nm: float = 10.0
    oversample: int = 4
    guard_px: int = 0

    def __post_init__(self):
        for name in ("height_px", "width_px", "oversample"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"field.{name} must be a positive integer, got {v!r}")
        if self.oversample < 4:
            raise InputError(f"field.oversample must be >= 4 (subpixels per pixel side), got {self.oversample}")
        if not self.pixel_nm > 0:
            raise InputError(f"field.pixel_nm must be positive, got {self.pixel_nm!r}")
        if not isinstance(self.guard_px, int) or self.guard_px < 0:
            raise InputError(f"field.guard_px must be a non-negative integer, got {self.guard_px!r}")

    @property
    def sim_shape_px(self) -> tuple[int, int]:
        """(H, W) in pixels of the simulated field, guard included."""
        return self.height_px + 2 * self.guard_px, self.width_px + 2 * self.guard_px

    @property
    def raster_shape(self) -> tuple[int, int]:
        h, w = self.sim_shape_px
        return h * self.oversample, w * self.oversample

    @property
    def subpixel_nm(self) -> float:
        return self.pixel_nm / self.oversample

    def axes_nm(self, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Subpixel-centre coordinates (y, x) in nm, origin at the field's top-left (guard < 0)."""
        s, g = self.subpixel_nm, self.guard_px * self.pixel_nm
        hh, ww = self.raster_shape
        y = (torch.arange(hh, device=device, dtype=torch.float64) + 0.5) * s - g
        x = (torch.arange(ww, device=device, dtype=torch.float64) + 0.5) * s - g
        return y, x


# ----------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class LineSpace:
    """Lines and spaces: ``pitch_nm``, ``duty`` = line width / pitch, ``orientation`` of the lines.

    Line j has its centre at ``offset_nm + j * pitch_nm`` (across the lines) plus a placement
    error N(0, placement_sigma_nm^2); each edge is displaced by line-edge roughness: a Gaussian
    process along the line with std ``ler_sigma_nm`` and Gaussian correlation length ``ler_corr_nm``.
    """

    pitch_nm: float = 192.0
    duty: float = 0.5
    orientation: str = "vertical"
    offset_nm: float = 0.0
    ler_sigma_nm: float = 0.0
    ler_corr_nm: float = 20.0
    placement_sigma_nm: float = 0.0
    feature: float = 0.0
    background: float = 1.0
    kind: str = field(default="line_space", init=False)

    def __post_init__(self):
        if not self.pitch_nm > 0:
            raise InputError(f"layout.pitch_nm must be positive, got {self.pitch_nm!r}")
        if not 0 < self.duty < 1:
            raise InputError(f"layout.duty must be in (0, 1), got {self.duty!r}")
        if self.orientation not in ("vertical", "horizontal"):
            raise InputError(f"layout.orientation must be 'vertical' or 'horizontal', got {self.orientation!r}")
        for name in ("ler_sigma_nm", "placement_sigma_nm"):
            if getattr(self, name) < 0:
                raise InputError(f"layout.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.ler_corr_nm > 0:
            raise InputError(f"layout.ler_corr_nm must be positive, got {self.ler_corr_nm!r}")

    def line_centres_nm(self, across_nm: float, margin_nm: float) -> list[tuple[int, float]]:
        """(index j, nominal centre) of every line meeting [-margin, across + margin]."""
        lo = math.floor((-margin_nm - self.pitch_nm - self.offset_nm) / self.pitch_nm)
        hi = math.ceil((across_nm + margin_nm + self.pitch_nm - self.offset_nm) / self.pitch_nm)
        return [(j, self.offset_nm + j * self.pitch_nm) for j in range(lo, hi + 1)]


@dataclass(frozen=True)
class ContactHoles:
    """A rectangular array of round (or square) contact holes of ``diameter_nm``; each hole's
    diameter varies by N(0, cd_sigma_nm^2). Holes are ``feature``, the field is ``background``."""

    pitch_x_nm: float = 160.0
    pitch_y_nm: float = 160.0
    diameter_nm: float = 80.0
    offset_x_nm: float = 80.0
    offset_y_nm: float = 80.0
    shape: str = "round"
    cd_sigma_nm: float = 0.0
    feature: float = 1.0
    background: float = 0.1
    kind: str = field(default="contact_holes", init=False)

    def __post_init__(self):
        for name in ("pitch_x_nm", "pitch_y_nm", "diameter_nm"):
            if not getattr(self, name) > 0:
                raise InputError(f"layout.{name} must be positive, got {getattr(self, name)!r}")
        if self.shape not in ("round", "square"):
            raise InputError(f"layout.shape must be 'round' or 'square', got {self.shape!r}")
        if self.cd_sigma_nm < 0:
            raise InputError(f"layout.cd_sigma_nm must be >= 0, got {self.cd_sigma_nm!r}")


# A stylised 6T-SRAM-like cell in fractions of the cell: two vertical active stripes, two
# horizontal gate stripes that each cross one active stripe, and four landing pads.
SRAM_RECTS: tuple[tuple[float, float, float, float], ...] = (
    # (x0, y0, x1, y1)
    (0.10, 0.00, 0.26, 1.00),  # active, left
    (0.74, 0.00, 0.90, 1.00),  # active, right
    (0.02, 0.20, 0.62, 0.32),  # gate, upper (crosses the left active stripe)
    (0.38, 0.68, 0.98, 0.80),  # gate, lower (crosses the right active stripe)
    (0.40, 0.42, 0.52, 0.56),  # pad
    (0.48, 0.04, 0.60, 0.14),  # pad
    (0.40, 0.86, 0.52, 0.96),  # pad
    (0.56, 0.44, 0.66, 0.56),  # pad
)


@dataclass(frozen=True)
class SramCell:
    """The stylised SRAM-like cell (:data:`SRAM_RECTS`) of ``cell_w_nm x cell_h_nm``, tiled."""

    cell_w_nm: float = 320.0
    cell_h_nm: float = 480.0
    offset_x_nm: float = 0.0
    offset_y_nm: float = 0.0
    feature: float = 0.0
    background: float = 1.0
    kind: str = field(default="sram", init=False)

    def __post_init__(self):
        if not (self.cell_w_nm > 0 and self.cell_h_nm > 0):
            raise InputError(f"layout cell size must be positive, got {self.cell_w_nm!r} x {self.cell_h_nm!r}")


Layout = LineSpace | ContactHoles | SramCell
LAYOUTS = {"line_space": LineSpace, "contact_holes": ContactHoles, "sram": SramCell}


# ----------------------------------------------------------------------------- defects
@dataclass(frozen=True)
class Bridge:
    """Feature material joining line ``line`` and line ``line + 1`` over ``length_nm`` along the
    lines, centred at ``along_nm`` (distance along the lines from the field's top/left edge)."""

    line: int
    along_nm: float
    length_nm: float = 60.0
    kind: str = field(default="bridge", init=False)


@dataclass(frozen=True)
class Open:
    """A break in line ``line``: background over ``length_nm`` along the line, centred at ``along_nm``."""

    line: int
    along_nm: float
    length_nm: float = 60.0
    kind: str = field(default="open", init=False)


@dataclass(frozen=True)
class Particle:
    """A disc of radius ``radius_nm`` at (x_nm, y_nm) with amplitude ``amplitude``."""

    x_nm: float
    y_nm: float
    radius_nm: float = 30.0
    amplitude: float = 0.0
    kind: str = field(default="particle", init=False)


Defect = Bridge | Open | Particle
DEFECTS = {"bridge": Bridge, "open": Open, "particle": Particle}


def defect_from_dict(d: dict) -> Defect:
    """Inverse of ``dataclasses.asdict`` for a defect (``kind`` selects the class)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in DEFECTS:
        raise InputError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECTS)}")
    try:
        return DEFECTS[kind](**d)
    except TypeError as e:
        raise InputError(f"bad {kind} defect parameters {d}: {e}") from None


# ----------------------------------------------------------------------------- rasters
@dataclass(frozen=True)
class Raster:
    """Rasterised layouts of a batch (B images) on the oversampled simulated field.

    ``clean``: (B, Hs, Ws) amplitude without defects (None when not kept); ``defect``: the same with
    the defects; ``footprint``: (B, Hs, Ws) bool, where they differ; ``mask``: (B, H, W) bool defect
    mask of the field of view (guard cropped), a pixel being defect when >= 50 % of its subpixels
    are footprint.
    """

    clean: torch.Tensor | None
    defect: torch.Tensor
    footprint: torch.Tensor
    mask: torch.Tensor


def _ler(gen: torch.Generator, n_edges: int, length: int, step_nm: float, sigma: float, corr: float) -> torch.Tensor:
    """(n_edges, length) edge displacements: Gaussian process, std ``sigma``, Gaussian ACF exp(-d^2/corr^2).

    Spectral synthesis (periodic over ``length``): white noise filtered by sqrt(S(f)),
    S(f) ~ exp(-(pi corr f)^2), normalised so the expected variance is sigma^2.
    """
    white = torch.randn(n_edges, length, generator=gen)
    if sigma == 0:
        return torch.zeros(n_edges, length, dtype=torch.float64)
    f = torch.fft.rfftfreq(length, d=step_nm)
    s = torch.exp(-((math.pi * corr * f) ** 2))
    # normalise over the full (two-sided) spectrum so that the expected variance is sigma^2
    full = torch.exp(-((math.pi * corr * torch.fft.fftfreq(length, d=step_nm)) ** 2))
    s = s / full.mean()
    return (sigma * torch.fft.irfft(torch.fft.rfft(white, dim=-1) * s.sqrt(), n=length, dim=-1)).double()


@dataclass(frozen=True)
class LineSteps:
    """One image's line/space layout as the steps of its coverage rows (lines' frame): row r's
    coverage is cumsum_j of a difference array holding ``vals[e, r]`` at index ``idx[e, r]``
    (E = 4 per line: each edge adds (1 - frac u) at floor(u) and frac u at floor(u) + 1, u its
    position in subpixels), truncated to ``n_across``. ``centres``: each line's centre-line (nm)."""

    idx: torch.Tensor
    vals: torch.Tensor
    n_across: int
    centres: dict[int, torch.Tensor]

    def coverage(self, rows: slice = slice(None)) -> torch.Tensor:
        """(n_rows, n_across) coverage in [0, 1] of the rows ``rows``."""
        idx, vals = self.idx[:, rows], self.vals[:, rows]
        out = torch.zeros(idx.shape[1], self.n_across + 2, dtype=torch.float32)
        out.scatter_add_(1, idx.T, vals.T)
        torch.cumsum(out, -1, out=out)
        # float32 running sums leave ~1e-7 residues where the coverage is exactly 0 or 1: snap them
        return out[:, : self.n_across].round_(decimals=5).clamp_(0, 1)


def line_steps(layout: LineSpace, fov: FieldOfView, gens: Sequence[torch.Generator], along: torch.Tensor,
               across: torch.Tensor) -> list[LineSteps]:
    """The lines of every image (lines' frame: along = axis 0), with placement error and roughness.

    Rows are covered exactly across the lines: a subpixel cut by an edge gets the covered fraction
    of its width (area-weighted rasterisation, so edge positions are not quantised to the grid).
    """
    n_al, n_ac = along.numel(), across.numel()
    s = fov.subpixel_nm
    ac0 = float(across[0]) - 0.5 * s  # left edge of the raster (nm)
    lines = layout.line_centres_nm(float(across[-1] - across[0]) + s, margin_nm=-ac0)
    half = 0.5 * layout.duty * layout.pitch_nm
    nominal = torch.tensor([c for _, c in lines], dtype=torch.float64)[:, None]
    sign = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(len(lines))[:, None]
    out = []
    for g in gens:
        place = layout.placement_sigma_nm * torch.randn(len(lines), generator=g, dtype=torch.float64)
        rough = _ler(g, 2 * len(lines), n_al, s, layout.ler_sigma_nm, layout.ler_corr_nm)
        c = nominal + place[:, None]
        edges = torch.stack([c - half + rough[0::2], c + half + rough[1::2]], 1).reshape(2 * len(lines), n_al)
        edges = torch.cummax(edges, dim=0).values  # huge roughness must not let edges cross
        u = ((edges - ac0) / s).clamp(0, n_ac)
        i = torch.floor(u)
        f = u - i
        i = i.long()
        idx = torch.cat([i, i + 1])
        vals = torch.cat([sign * (1 - f), sign * f]).float()
        left, right = edges[0::2], edges[1::2]
        out.append(LineSteps(idx=idx, vals=vals, n_across=n_ac,
                             centres={j: 0.5 * (left[k] + right[k]) for k, (j, _) in enumerate(lines)}))
    return out


def _holes_inside(layout: ContactHoles, gens, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    iy = torch.round((y - layout.offset_y_nm) / layout.pitch_y_nm)
    ix = torch.round((x - layout.offset_x_nm) / layout.pitch_x_nm)
    dy = (y - layout.offset_y_nm - iy * layout.pitch_y_nm)[:, None]
    dx = (x - layout.offset_x_nm - ix * layout.pitch_x_nm)[None, :]
    ny, nx = int(iy.max() - iy.min()) + 1, int(ix.max() - ix.min()) + 1
    ky, kx = (iy - iy.min()).long(), (ix - ix.min()).long()
    out = []
    for g in gens:
        r = 0.5 * (layout.diameter_nm + layout.cd_sigma_nm * torch.randn(ny, nx, generator=g, dtype=torch.float64))
        r = r.clamp(min=0)[ky][:, kx]
        inside = (dx**2 + dy**2 < r**2) if layout.shape == "round" else ((dx.abs() < r) & (dy.abs() < r))
        out.append(inside)
    return torch.stack(out)


def _sram_inside(layout: SramCell, n: int, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    fy = torch.remainder(y - layout.offset_y_nm, layout.cell_h_nm) / layout.cell_h_nm
    fx = torch.remainder(x - layout.offset_x_nm, layout.cell_w_nm) / layout.cell_w_nm
    inside = torch.zeros(y.numel(), x.numel(), dtype=torch.bool)
    for x0, y0, x1, y1 in SRAM_RECTS:
        inside |= ((fy >= y0) & (fy < y1))[:, None] & ((fx >= x0) & (fx < x1))[None, :]
    return inside[None].expand(n, -1, -1)


def _span(coord: torch.Tensor, lo: float, hi: float) -> slice:
    """Slice of subpixels whose centre lies in [lo, hi)."""
    i0 = int(torch.searchsorted(coord, torch.tensor(lo, dtype=coord.dtype), right=False))
    i1 = int(torch.searchsorted(coord, torch.tensor(hi, dtype=coord.dtype), right=False))
    return slice(i0, i1)


def rasterize(layout: Layout, fov: FieldOfView, defects: Sequence[Sequence[Defect]], gens: Sequence[torch.Generator],
              *, keep_clean: bool = True) -> Raster:
    """Rasterise ``layout`` for B = len(gens) images, image b with ``defects[b]`` (see :class:`Raster`).

    With ``keep_clean=False`` the defects are painted into the clean raster in place (saves a copy
    when only the defect raster is imaged); ``clean`` is then None.

    For ``horizontal`` lines everything is built in the lines' frame (lines vertical) and transposed;
    bridge/open positions are along the lines in both cases.
    """
    if len(defects) != len(gens):
        raise InputError(f"need one defect list per image: {len(defects)} lists for {len(gens)} images")
    y, x = fov.axes_nm()
    n = len(gens)
    transpose = isinstance(layout, LineSpace) and layout.orientation == "horizontal"
    along, across = (x, y) if transpose else (y, x)
    if isinstance(layout, LineSpace):
        steps = line_steps(layout, fov, gens, along, across)
        cover, centres = torch.stack([st.coverage() for st in steps]), [st.centres for st in steps]
    else:
        check_particles_only(layout, defects)
        inside = _holes_inside(layout, gens, y, x) if isinstance(layout, ContactHoles) else _sram_inside(layout, n, y, x)
        cover, centres = inside.float(), [None] * n
    feat, bg = float(layout.feature), float(layout.background)
    clean = cover.mul_(feat - bg).add_(bg)  # in place: the coverage is not needed any more
    defect = clean.clone() if keep_clean and any(len(dl) for dl in defects) else clean
    footprint = torch.zeros(clean.shape, dtype=torch.bool)
    mask = torch.zeros(n, fov.height_px, fov.width_px, dtype=torch.bool)
    for b, dl in enumerate(defects):
        if dl:
            boxes = paint(defect[b], footprint[b], layout, dl, along, across, centres[b], transpose)
            place_mask(mask[b], footprint[b], boxes, 0, fov, transpose)
    if transpose:
        defect, footprint = (t.transpose(-1, -2).contiguous() for t in (defect, footprint))
        clean = clean.transpose(-1, -2).contiguous() if keep_clean else None
    return Raster(clean=clean if keep_clean else None, defect=defect, footprint=footprint, mask=mask)


def check_particles_only(layout: Layout, defects: Sequence[Sequence[Defect]]) -> None:
    for dl in defects:
        for d in dl:
            if not isinstance(d, Particle):
                raise InputError(f"{d.kind} defects need a line_space layout, not {layout.kind}")


def defect_span_nm(d: Defect, transpose: bool) -> tuple[float, float]:
    """The extent of a defect along the first axis of the lines' frame (nm)."""
    if isinstance(d, Particle):
        py = d.x_nm if transpose else d.y_nm
        return py - d.radius_nm, py + d.radius_nm
    return d.along_nm - 0.5 * d.length_nm, d.along_nm + 0.5 * d.length_nm


def paint(raster: torch.Tensor, footprint: torch.Tensor, layout: Layout, defects: Sequence[Defect], along: torch.Tensor,
          across: torch.Tensor, centres: dict[int, torch.Tensor] | None, transpose: bool) -> list[tuple[slice, slice]]:
    """Paint ``defects`` into one raster (n_along, n_across; lines' frame; ``along``/``across`` its
    subpixel-centre coordinates, ``centres`` the line centre-lines on those rows), mark the changed
    subpixels in ``footprint``, and return the painted (rows, cols) boxes."""
    feat, bg = float(layout.feature), float(layout.background)
    half_pitch = 0.5 * layout.pitch_nm if isinstance(layout, LineSpace) else 0.0
    boxes = []
    for d in defects:
        if isinstance(d, Particle):
            py, px = (d.x_nm, d.y_nm) if transpose else (d.y_nm, d.x_nm)  # into the (along, across) frame
            rows = _span(along, py - d.radius_nm, py + d.radius_nm)
            cols = _span(across, px - d.radius_nm, px + d.radius_nm)
            sel = (along[rows, None] - py) ** 2 + (across[None, cols] - px) ** 2 < d.radius_nm**2
            value = float(d.amplitude)
        elif isinstance(d, (Bridge, Open)):
            if centres is None:
                raise InputError(f"{d.kind} defects need a line_space layout, not {layout.kind}")
            j1 = d.line + 1 if isinstance(d, Bridge) else d.line
            if d.line not in centres or j1 not in centres:
                raise InputError(f"{d.kind} at line {d.line} is outside the field (lines {min(centres)}..{max(centres)})")
            if not d.length_nm > 0:
                raise InputError(f"{d.kind} length_nm must be positive, got {d.length_nm!r}")
            rows = _span(along, d.along_nm - 0.5 * d.length_nm, d.along_nm + 0.5 * d.length_nm)
            cols = slice(0, across.numel())
            if isinstance(d, Bridge):
                # from line j's centre-line to line j+1's (row by row): all feature
                lo, hi = centres[d.line][rows], centres[d.line + 1][rows]
                value = feat
            else:
                # line j +- half a pitch: the line and half of each neighbouring space, all background
                lo, hi = centres[d.line][rows] - half_pitch, centres[d.line][rows] + half_pitch
                value = bg
            sel = (across[None, :] >= lo[:, None]) & (across[None, :] < hi[:, None])
        else:
            raise InputError(f"unknown defect {d!r}")
        region = raster[rows, cols]  # a view: painting it paints the raster
        before = region.clone()
        region[sel] = value
        footprint[rows, cols] |= (region - before).abs() > 1e-6
        boxes.append((rows, cols))
    return boxes


def place_mask(mask: torch.Tensor, footprint: torch.Tensor, boxes: list[tuple[slice, slice]], row0: int,
               fov: FieldOfView, transpose: bool) -> None:
    """Write the pixel mask of the painted ``boxes`` into ``mask`` (H, W; image frame, guard cropped).

    ``footprint`` (lines' frame) starts at subpixel row ``row0`` (a multiple of the oversampling);
    the mask is only evaluated on the pixel-aligned bounding box of the boxes (it is 0 elsewhere).
    """
    if not boxes:
        return
    q, g = fov.oversample, fov.guard_px
    r0, r1 = min(r.start for r, _ in boxes) // q, -(-max(r.stop for r, _ in boxes) // q)
    c0, c1 = min(c.start for _, c in boxes) // q, -(-max(c.stop for _, c in boxes) // q)
    box = pixel_mask(footprint[None, r0 * q: r1 * q, c0 * q: c1 * q], q)[0]
    r0, r1 = r0 + row0 // q, r1 + row0 // q
    if transpose:
        r0, r1, c0, c1, box = c0, c1, r0, r1, box.T
    h0, w0 = max(r0, g), max(c0, g)
    h1, w1 = min(r1, g + fov.height_px), min(c1, g + fov.width_px)
    if h1 > h0 and w1 > w0:
        mask[h0 - g: h1 - g, w0 - g: w1 - g] = box[h0 - r0: h1 - r0, w0 - c0: w1 - c0]


def pixel_mask(footprint: torch.Tensor, q: int) -> torch.Tensor:
    """(B, q h, q w) subpixel footprint -> (B, h, w) pixel mask: a pixel is defect when at least
    :data:`MASK_COVERAGE` of its q x q subpixels are footprint."""
    frac = F.avg_pool2d(footprint[:, None].to(torch.float32), q)[:, 0]
    return frac >= MASK_COVERAGE - 1e-6
