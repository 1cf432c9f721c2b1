"""Defect labeller: a defect mask and count for every generated image, from two references.

The published SinSEMI code blurs, thresholds ``|generated - defect-free reference| > 5`` gray levels
and keeps components of more than 50 px with circularity > 0.6. That needs the generated lines to be
pixel-aligned with the reference; a good one-shot generator shifts and roughens them slightly, and
every shifted line edge then reads as a "defect".

Ours models the periodic line structure of each image *itself* (the reference only fixes the line
orientation and the template used to measure shifts):

1. blur ``g = G_sigma * x`` (sigma = ``blur_sigma``);
2. per row r (lines run along the rows' normal, i.e. vertical lines), the lateral shift ``s_r`` that
   best correlates the row's local profile with the reference's column profile ``t``; ``s`` is
   median-filtered over rows so the rows crossing a defect borrow their neighbours' shift;
3. the image's own line profile ``P(x) = median_r g(r, x + s_r)`` (robust to defects covering less than
   half the rows), the expected image ``E(r, x) = P(x - s_r) + b_r`` with ``b_r`` a smoothed row offset;
4. residual ``R = g - E``; components of ``R < -thr`` (dark: bridges, particles) and ``R > +thr``
   (bright: opens) with area > ``min_area`` px and circularity > ``min_circularity`` are detections;
5. each detection is split at its peaks (``mask_rel``: neighbouring defects merge under the optical
   blur) and, with ``mask_shape="lines"``, each defect's mask is the space (dark defect) or line
   (bright defect) run at its peak, over the rows whose residual reaches ``row_rel`` of the peak's.

Defects shorter than the optical blur (~14 px here) show only their mass (contrast x area), not their
length: :func:`calibrate_contrast` measures the mass per defect pixel on the defect reference with its
known mask, and the labeller then sets each defect's length to mass / (contrast x width). Without it
(no reference mask) the length comes from ``row_rel`` and is over-estimated for short defects.

Images are floats in their own scale ([0, 1] for 8-bit), so the paper's 5 gray levels are 5/255.
Horizontal lines are handled by transposing. Pure numpy/scipy; no torch autograd, no Lightning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from sinsemi.errors import InputError
from sinsemi.progress import track


@dataclass(frozen=True)
class LabellerConfig:
    """Thresholds of the labeller (all in the image's own intensity scale)."""

    threshold: float = 5.0 / 255.0      # |residual| above this is a defect pixel (paper: 5 gray levels)
    blur_sigma: float = 1.0             # Gaussian blur before differencing (paper: 5x5, sigma 1)
    min_area: int = 50                  # components of more pixels than this are kept (paper: 50)
    min_circularity: float = 0.0        # 4*pi*A/P^2 lower bound; paper 0.6 (0 = off)
    align: bool = True                  # estimate per-row lateral line shifts
    max_shift: float = 5.0              # largest line shift searched (px)
    shift_step: float = 0.25            # shift grid step (px)
    profile_sigma: float = 3.0          # rows averaged (Gaussian sigma) for each row's shift estimate
    shift_window: int = 31              # median filter (rows) applied to the shifts and row offsets
    mask_rel: float = 0.75              # >0: split components at peaks; mask = |R| >= mask_rel * peak (0: whole component)
    peak_window: int = 7                # local-maximum window (px) for the peaks
    mask_shape: str = "lines"           # "lines": footprint across = the space/line run at the peak; "region": the peak region
    row_rel: float = 0.85               # "lines": rows whose mean residual >= row_rel * the peak row's
    contrast: float | None = None       # "lines": residual mass per defect pixel (from calibrate_contrast); set:
                                        # a defect's length along the lines = its mass / (contrast * run width)
    mass_window: int = 12               # rows either side of the peak summed for a defect's mass
    border: int = 17                    # px: a detection whose centroid is this close to an edge counts as a border
                                        # one (the SinSEMI net's receptive-field half-width)

    @classmethod
    def from_dict(cls, d: dict | None) -> LabellerConfig:
        """The config from a mapping (the ``labeller`` block of the eval config), every key checked:
        one :class:`InputError` naming the first bad setting and its allowed range."""
        from sinsemi.validation import check_bool, check_choice, check_number

        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown labeller setting(s): {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        for key, value in d.items():
            name = f"labeller.{key}"
            if key == "mask_shape":
                check_choice(name, value, ("lines", "region"))
            elif isinstance(cls.__dataclass_fields__[key].default, bool):
                check_bool(name, value)
            else:
                check_number(name, value, **_LABELLER_RANGES.get(key, {}))
        return cls(**d)


#: allowed range of each numeric labeller setting (``check_number`` keywords; default: > 0)
_LABELLER_RANGES: dict[str, dict] = {
    "blur_sigma": {"strict": False}, "min_area": {"strict": False, "integer": True},
    "min_circularity": {"strict": False, "maximum": 1.0}, "max_shift": {"strict": False},
    "profile_sigma": {"strict": False}, "shift_window": {"minimum": 1, "strict": False, "integer": True},
    "mask_rel": {"strict": False, "maximum": 1.0, "strict_maximum": True},
    "peak_window": {"minimum": 1, "strict": False, "integer": True},
    "row_rel": {"maximum": 1.0, "strict_maximum": True}, "contrast": {"allow_none": True},
    "mass_window": {"strict": False, "integer": True}, "border": {"strict": False, "integer": True},
}


@dataclass
class LabelResult:
    """Per-image defect masks (N, H, W) bool, counts (N,), and per-defect centroids (y, x) / areas."""

    masks: torch.Tensor
    counts: torch.Tensor
    centroids: list[list[tuple[float, float]]] = field(default_factory=list)
    areas: list[list[int]] = field(default_factory=list)
    orientation: str = "vertical"

    @property
    def mean_count(self) -> float:
        return float(self.counts.float().mean())


# ----------------------------------------------------------------------------- pieces
def _gray(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) or (H, W) -> float64 (N, H, W) / (H, W) by channel mean."""
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if a.ndim == 4:
        return a.mean(axis=1)
    if a.ndim == 3:
        return a.mean(axis=0)
    if a.ndim == 2:
        return a
    raise InputError(f"labeller expects (N, C, H, W) images, got shape {a.shape}")


def line_orientation(reference: np.ndarray) -> str:
    """'vertical' when the column means vary more than the row means (lines run top to bottom)."""
    return "vertical" if reference.mean(axis=0).var() >= reference.mean(axis=1).var() else "horizontal"


def circularity(component: np.ndarray) -> float:
    """4*pi*A / P^2 with P the exposed pixel-edge count times pi/4 (an unbiased length estimate for
    random orientations), clipped to 1. A disc gives ~1, a 1-px-wide line ~0."""
    a = float(component.sum())
    if a == 0:
        return 0.0
    p = np.pad(component, 1).astype(np.int8)
    edges = np.abs(np.diff(p, axis=0)).sum() + np.abs(np.diff(p, axis=1)).sum()
    perim = edges * np.pi / 4.0
    return float(min(1.0, 4 * np.pi * a / perim**2))


def _sample_rows(g: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """``out[r, j] = g(r, xq[r, j])`` by linear interpolation; NaN outside the image."""
    w = g.shape[1]
    xs = np.arange(w, dtype=np.float64)
    out = np.stack([np.interp(q, xs, row) for row, q in zip(g, xq)])
    out[(xq < 0) | (xq > w - 1)] = np.nan
    return out


def line_period(template: np.ndarray) -> float:
    """The template's dominant period (px) from its spectrum (the whole width when it has no peak)."""
    w = template.size
    spec = np.abs(np.fft.rfft(template - template.mean()))
    k = int(np.argmax(spec[1:])) + 1 if spec.size > 1 else 1
    return w / k


def _shift_scores(prof: np.ndarray, template: np.ndarray, cand: np.ndarray, m: int) -> np.ndarray:
    """Correlation (rows of ``prof`` (R, W) x candidate shifts) of each row with the template moved
    right by each candidate, over the columns [m, W - m) that stay inside the image."""
    w = template.size
    xs = np.arange(w, dtype=np.float64)
    tmpl = np.stack([np.interp(xs - s, xs, template) for s in cand])[:, m:w - m]
    tmpl = tmpl - tmpl.mean(axis=1, keepdims=True)
    tmpl /= np.linalg.norm(tmpl, axis=1, keepdims=True) + 1e-12
    prof = prof[:, m:w - m]
    prof = prof - prof.mean(axis=1, keepdims=True)
    return prof @ tmpl.T


def global_shift(g: np.ndarray, template: np.ndarray, cfg: LabellerConfig) -> float:
    """The image's overall lateral line shift (px) against the template, searched over one period
    (a generator may move every line by more than ``max_shift``; the per-row search then starts here)."""
    w = g.shape[1]
    half = 0.5 * line_period(template)
    m = int(np.ceil(half)) + 1
    if w - 2 * m < 8:
        return 0.0
    cand = np.arange(-half, half + 1e-9, cfg.shift_step)
    return float(cand[int(np.argmax(_shift_scores(g.mean(axis=0, keepdims=True), template, cand, m)[0]))])


def row_shifts(g: np.ndarray, template: np.ndarray, cfg: LabellerConfig) -> np.ndarray:
    """Per-row lateral shift (px) maximising the correlation of the row profile with ``template``:
    within ``max_shift`` of the image's global shift."""
    h, w = g.shape
    if not cfg.align or cfg.max_shift == 0:
        return np.zeros(h)
    s0 = global_shift(g, template, cfg)
    cand = s0 + np.arange(-cfg.max_shift, cfg.max_shift + 1e-9, cfg.shift_step)
    m = int(np.ceil(np.abs(cand).max())) + 1
    if w - 2 * m < 8:
        return np.zeros(h)
    prof = ndimage.gaussian_filter1d(g, cfg.profile_sigma, axis=0, mode="nearest")
    s = cand[np.argmax(_shift_scores(prof, template, cand, m), axis=1)]
    return ndimage.median_filter(s, size=min(cfg.shift_window, h), mode="nearest")


def expected_image(g: np.ndarray, template: np.ndarray, cfg: LabellerConfig) -> np.ndarray:
    """The defect-free image implied by the image's own line profile, following its row shifts."""
    h, w = g.shape
    s = row_shifts(g, template, cfg)
    m = int(np.ceil(np.abs(s).max())) + 1 if s.size else 1
    xe = np.arange(-m, w + m, dtype=np.float64)             # profile grid, wider than the image
    aligned = _sample_rows(g, xe[None, :] + s[:, None])      # aligned[r, j] = g(r, xe_j + s_r)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            profile = np.nanmedian(aligned, axis=0)           # the image's own line profile
    profile = np.interp(xe, xe[np.isfinite(profile)], profile[np.isfinite(profile)])
    xs = np.arange(w, dtype=np.float64)
    e = np.stack([np.interp(xs - sr, xe, profile) for sr in s])
    offset = np.median(g - e, axis=1)
    offset = ndimage.median_filter(offset, size=min(cfg.shift_window, h), mode="nearest")
    return e + offset[:, None]


def bright_map(e: np.ndarray) -> np.ndarray:
    """Which pixels of the expected image are on the bright side of the line profile (mid-level)."""
    return e > 0.5 * (np.percentile(e, 2) + np.percentile(e, 98))


def _components(residual: np.ndarray, cfg: LabellerConfig, bright: np.ndarray | None = None) -> tuple[np.ndarray, list, list]:
    """Defect mask, centroids and areas from one residual map (dark and bright defects separately).

    Detection as the published code: 8-connected components of ``|R| > thr`` larger than ``min_area``
    (and round enough). With ``mask_rel > 0`` each component is then split at its local maxima: a peak
    of height h claims the connected region ``R >= mask_rel * h`` around it, and a peak whose region
    meets an earlier (higher) one's is the same defect. This separates neighbouring defects whose
    optical blur merges at the 5-gray-level threshold and gives masks close to the defect footprint.
    """
    mask = np.zeros(residual.shape, dtype=bool)
    cents, areas = [], []
    structure = np.ones((3, 3), dtype=bool)  # 8-connectivity, as the published code
    for sign in (-1.0, 1.0):
        r = sign * residual
        labels, n = ndimage.label(r > cfg.threshold, structure=structure)
        if n == 0:
            continue
        local_max = (r == ndimage.maximum_filter(r, size=cfg.peak_window)) & (labels > 0)
        for i in range(1, n + 1):
            comp = labels == i
            if int(comp.sum()) <= cfg.min_area:
                continue
            if cfg.min_circularity > 0 and circularity(comp) <= cfg.min_circularity:
                continue
            for region in _split(r, comp, local_max, cfg, structure):
                if cfg.mask_shape == "lines" and bright is not None:
                    # dark defects (bridges) fill bright spaces; bright ones (opens) cut dark lines
                    shaped = _line_shape(r, region, bright if sign < 0 else ~bright, cfg)
                    region = shaped if shaped.any() else region  # off the lines/spaces: keep the blob itself
                mask |= region
                yy, xx = np.nonzero(region)
                cents.append((float(yy.mean()), float(xx.mean())))
                areas.append(int(region.sum()))
    return mask, cents, areas


def _split(r: np.ndarray, comp: np.ndarray, local_max: np.ndarray, cfg: LabellerConfig, structure) -> list[np.ndarray]:
    """One region per distinct peak of ``r`` inside ``comp`` (the whole component when mask_rel = 0)."""
    if cfg.mask_rel <= 0:
        return [comp]
    peaks = np.argwhere(local_max & comp)
    peaks = sorted(peaks.tolist(), key=lambda p: -r[p[0], p[1]])
    regions: list[np.ndarray] = []
    taken = np.zeros_like(comp)
    for y, x in peaks:
        lab, _ = ndimage.label(comp & (r >= cfg.mask_rel * r[y, x]), structure=structure)
        region = lab == lab[y, x]
        grown = ndimage.binary_dilation(region, structure=structure)
        if (grown & taken).any():
            continue  # the slope or plateau of a defect already found
        regions.append(region)
        taken |= region
    return regions


def _line_shape(r: np.ndarray, region: np.ndarray, allowed: np.ndarray, cfg: LabellerConfig) -> np.ndarray:
    """A line-structure defect's footprint: across the lines, the run of ``allowed`` (space or line)
    pixels holding the peak; along the lines, the rows whose mean residual over that run is at least
    ``mask_rel`` of the peak row's. Falls back to ``region`` when the peak is not on an allowed pixel."""
    rr = np.where(region, r, -np.inf)
    y, x = np.unravel_index(int(np.argmax(rr)), r.shape)
    if not allowed[y, x]:
        return region
    row = allowed[y]
    x0 = x
    while x0 > 0 and row[x0 - 1]:
        x0 -= 1
    x1 = x
    while x1 < len(row) - 1 and row[x1 + 1]:
        x1 += 1
    if cfg.contrast:
        lo, hi = max(0, y - cfg.mass_window), min(r.shape[0], y + cfg.mass_window + 1)
        rows = np.clip(r[lo:hi, x0:x1 + 1], 0, None).sum(axis=1)
        length = max(1, int(round(rows.sum() / (cfg.contrast * (x1 - x0 + 1)))))
        yc = lo + float((rows * np.arange(len(rows))).sum() / max(rows.sum(), 1e-12))
        y0 = max(0, int(round(yc - (length - 1) / 2)))
        y1 = min(r.shape[0] - 1, y0 + length - 1)
        out = np.zeros_like(region)
        out[y0:y1 + 1, x0:x1 + 1] = allowed[y0:y1 + 1, x0:x1 + 1]
        return out
    prof = r[:, x0:x1 + 1].mean(axis=1)
    keep = prof >= cfg.row_rel * prof[y]
    y0 = y
    while y0 > 0 and keep[y0 - 1]:
        y0 -= 1
    y1 = y
    while y1 < len(keep) - 1 and keep[y1 + 1]:
        y1 += 1
    out = np.zeros_like(region)
    out[y0:y1 + 1, x0:x1 + 1] = allowed[y0:y1 + 1, x0:x1 + 1]
    return out


# ----------------------------------------------------------------------------- API
def label_defects(images: torch.Tensor, clean_reference: torch.Tensor, cfg: LabellerConfig | None = None) -> LabelResult:
    """Defect masks and counts of ``images`` (N, C, H, W) given the defect-free reference (C, H, W).

    Returns a :class:`LabelResult` whose masks are (N, H, W) bool in the images' own orientation.
    """
    cfg = cfg or LabellerConfig()
    ref = _gray(clean_reference)
    imgs = _gray(images)
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.shape[-2:] != ref.shape:
        raise InputError(f"images are {imgs.shape[-2:]} but the defect-free reference is {ref.shape}: they must match")
    orient = line_orientation(ref)
    if orient == "horizontal":
        ref, imgs = ref.T, np.ascontiguousarray(np.swapaxes(imgs, 1, 2))
    blur = (lambda a: ndimage.gaussian_filter(a, cfg.blur_sigma, mode="nearest")) if cfg.blur_sigma > 0 else (lambda a: a)
    template = blur(ref).mean(axis=0)
    masks, counts, cents, areas = [], [], [], []
    for x in track(imgs, "labeller", unit="images"):  # a log line every ~10 s on long sets
        g = blur(x)
        e = expected_image(g, template, cfg)
        m, c, a = _components(g - e, cfg, bright_map(e))
        if orient == "horizontal":
            m, c = m.T, [(xx, yy) for yy, xx in c]
        masks.append(m)
        counts.append(len(c))
        cents.append(c)
        areas.append(a)
    return LabelResult(masks=torch.from_numpy(np.stack(masks)), counts=torch.tensor(counts, dtype=torch.long),
                       centroids=cents, areas=areas, orientation=orient)


def calibrate_contrast(defect: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, cfg: LabellerConfig | None = None) -> float | None:
    """Residual mass per defect pixel of the defect reference (C, H, W) with its exact ``mask`` (H, W):
    below the optical resolution only a defect's mass (contrast x area) is measurable, so this fixes
    the contrast and lets the labeller turn masses into lengths. None when no defect is found."""
    cfg = cfg or LabellerConfig()
    area = float(mask.sum())
    if area == 0:
        return None
    base = dataclasses.replace(cfg, contrast=None)
    ref = _gray(clean)
    img = _gray(defect)
    orient = line_orientation(ref)
    m = mask.cpu().numpy().astype(bool)
    if orient == "horizontal":
        ref, img, m = ref.T, img.T, m.T
    blur = (lambda a: ndimage.gaussian_filter(a, cfg.blur_sigma, mode="nearest")) if cfg.blur_sigma > 0 else (lambda a: a)
    g = blur(img)
    e = expected_image(g, blur(ref).mean(axis=0), base)
    resid = g - e
    bright = bright_map(e)
    sign = -1.0 if bright[m].mean() > 0.5 else 1.0   # a defect on bright space is dark
    yy, xx = np.nonzero(m)
    lo, hi = max(0, yy.min() - cfg.mass_window), min(g.shape[0], yy.max() + cfg.mass_window + 1)
    mass = np.clip(sign * resid[lo:hi, xx.min():xx.max() + 1], 0, None).sum()
    return float(mass / area) if mass > 0 else None


# ----------------------------------------------------------------------------- validation
@dataclass
class LabelScore:
    """Object-level precision/recall/F1 and mean per-image mask IoU against exact masks."""

    precision: float
    recall: float
    f1: float
    mean_iou: float
    tp: int
    fp: int
    fn: int
    n_images: int
    count_accuracy: float


def score_labels(pred: torch.Tensor, true: torch.Tensor, *, match_iou: float = 0.5) -> LabelScore:
    """Compare predicted and exact masks (N, H, W). A true defect (8-connected component of the exact
    mask) is found when an unmatched predicted component overlaps it with IoU >= ``match_iou``
    (greedy by IoU, one-to-one). Mean IoU is per image with empty/empty = 1."""
    from sinsemi.metrics.segmentation import per_image_iou

    structure = np.ones((3, 3), dtype=bool)
    tp = fp = fn = 0
    count_ok = 0
    for p, t in zip(pred.cpu().numpy().astype(bool), true.cpu().numpy().astype(bool)):
        lp, n_p = ndimage.label(p, structure=structure)
        lt, n_t = ndimage.label(t, structure=structure)
        pairs = []
        for i in range(1, n_t + 1):
            ti = lt == i
            for j in np.unique(lp[ti]):
                if j == 0:
                    continue
                pj = lp == j
                iou = (ti & pj).sum() / (ti | pj).sum()
                pairs.append((iou, i, j))
        used_t, used_p = set(), set()
        for iou, i, j in sorted(pairs, reverse=True):
            if iou < match_iou or i in used_t or j in used_p:
                continue
            used_t.add(i)
            used_p.add(j)
        tp += len(used_t)
        fn += n_t - len(used_t)
        fp += n_p - len(used_p)
        count_ok += int(n_p == n_t)
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    ious = per_image_iou(pred, true)
    return LabelScore(precision=prec, recall=rec, f1=f1, mean_iou=float(ious.mean()), tp=tp, fp=fp, fn=fn,
                      n_images=int(pred.shape[0]), count_accuracy=count_ok / max(1, pred.shape[0]))
