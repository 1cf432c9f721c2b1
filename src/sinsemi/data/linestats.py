"""Statistics of a vertical line/space image, used to tune the ``line_pair`` preset against the real
image (tests/test_optics.py) and drawn on the preset-vs-real figure sheet.

All functions take a 2-D array (H, W) in gray levels (0..255 scale) with vertical lines:

* column-mean profile  p(x) = mean_y img(y, x);
* period   = W / k*, k* the peak of |rfft(p - mean p)| over k >= 1, refined by a parabola through
  the peak and its two neighbours (in pixels);
* contrast = max p - min p (gray levels);
* noise std = std of img(y, x) - p(x): everything that is not the common line profile (sensor noise,
  quantisation, roughness);
* radial PSD  P(r) = mean of |FFT2(img - mean)|^2 / (H W) over the frequencies whose radius
  sqrt(ky^2 + kx^2) (in cycles per field) rounds to r, r = 1..min(H, W) // 2;
* band powers = sums of P(r) over :data:`PSD_BANDS` (log-spaced radial bands; the line
  fundamental of a 5-period field falls in the 4-6 band).
"""

from __future__ import annotations

import numpy as np

PSD_BANDS: tuple[tuple[int, int], ...] = ((1, 3), (4, 6), (7, 12), (13, 24), (25, 48))


def column_profile(img: np.ndarray) -> np.ndarray:
    return np.asarray(img, dtype=np.float64).mean(0)


def period_px(img: np.ndarray) -> float:
    p = column_profile(img)
    f = np.abs(np.fft.rfft(p - p.mean()))
    k = int(np.argmax(f[1:])) + 1
    if 1 <= k < len(f) - 1:
        a, b, c = f[k - 1], f[k], f[k + 1]
        den = a - 2 * b + c
        k = k + (0.5 * (a - c) / den if den != 0 else 0.0)
    return len(p) / k


def contrast(img: np.ndarray) -> float:
    p = column_profile(img)
    return float(p.max() - p.min())


def noise_std(img: np.ndarray) -> float:
    img = np.asarray(img, dtype=np.float64)
    return float((img - column_profile(img)[None, :]).std())


def radial_psd(img: np.ndarray) -> np.ndarray:
    """P(r) for r = 1..min(H, W) // 2 (index 0 is r = 1)."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape
    power = np.abs(np.fft.fft2(img - img.mean())) ** 2 / img.size
    ky, kx = np.fft.fftfreq(h) * h, np.fft.fftfreq(w) * w
    r = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(int)
    n = min(h, w) // 2
    return np.array([power[r == k].mean() for k in range(1, n + 1)])


def band_powers(img: np.ndarray, bands=PSD_BANDS) -> np.ndarray:
    p = radial_psd(img)
    return np.array([p[lo - 1: hi].sum() for lo, hi in bands])


def line_stats(img: np.ndarray) -> dict[str, float]:
    """Every statistic above in one dict (band powers as ``psd_<lo>_<hi>``)."""
    img = np.asarray(img, dtype=np.float64)
    out = {"mean": float(img.mean()), "period_px": period_px(img), "contrast": contrast(img), "noise_std": noise_std(img)}
    for (lo, hi), v in zip(PSD_BANDS, band_powers(img)):
        out[f"psd_{lo}_{hi}"] = float(v)
    return out


def relative_errors(ours: dict[str, float], real: dict[str, float]) -> dict[str, float]:
    """|ours / real - 1| for every statistic."""
    return {k: abs(ours[k] / real[k] - 1.0) for k in real}
