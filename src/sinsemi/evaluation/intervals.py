"""Bootstrap confidence intervals over samples (percentile method, seeded).

For a statistic S of N per-sample values, draw B resamples of N indices with replacement
(``numpy.random.default_rng(seed)``), compute S on each, and take the (1 - level) / 2 and
(1 + level) / 2 quantiles of the B values as the interval. Ratio statistics (e.g. SIFID / the
two-reference row's SIFID) divide each resampled S by the fixed denominator; rates over samples
(same-place rate = sum near_i / sum n_i) resample the images, not the detections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sinsemi.errors import InputError

N_RESAMPLES = 1000
LEVEL = 0.95


def bootstrap_indices(n: int, *, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) indices drawn with replacement from range(n)."""
    if n < 1:
        raise InputError("bootstrap needs at least one sample")
    if n_resamples < 1:
        raise InputError(f"bootstrap needs at least one resample, got {n_resamples}")
    return np.random.default_rng(int(seed)).integers(0, n, size=(int(n_resamples), n))


def bootstrap_ci(stat: Callable[[np.ndarray], float], n: int, *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                 level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile interval of ``stat(idx)`` (idx: one resample's indices) over the resamples; NaN
    values of the statistic (e.g. a rate over a resample without detections) are left out; None
    when none is left."""
    if not 0 < level < 1:
        raise InputError(f"confidence level must be in (0, 1), got {level}")
    vals = np.array([stat(idx) for idx in bootstrap_indices(n, n_resamples=n_resamples, seed=seed)], dtype=float)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def mean_ci(values: Sequence[float], *, scale: float = 1.0, **kw) -> tuple[float, float] | None:
    """Interval of mean(values) / ``scale`` (``scale``: a ratio's fixed denominator)."""
    v = np.asarray(values, dtype=float)
    return bootstrap_ci(lambda idx: v[idx].mean() / scale, len(v), **kw)


def median_ci(values: Sequence[float], **kw) -> tuple[float, float] | None:
    """Interval of the median of ``values``."""
    v = np.asarray(values, dtype=float)
    return bootstrap_ci(lambda idx: float(np.median(v[idx])), len(v), **kw)


def rate_ci(hits: Sequence[int], totals: Sequence[int], **kw) -> tuple[float, float] | None:
    """Interval of sum(hits) / sum(totals) with the images (pairs hits_i, totals_i) resampled."""
    h, t = np.asarray(hits, dtype=float), np.asarray(totals, dtype=float)

    def stat(idx):
        d = t[idx].sum()
        return h[idx].sum() / d if d else float("nan")

    return bootstrap_ci(stat, len(h), **kw)


def ci_keys(stem: str, ci: tuple[float, float] | None) -> dict:
    """``{stem}_ci_low`` / ``{stem}_ci_high`` (None when there is no interval)."""
    lo, hi = ci if ci is not None else (None, None)
    return {f"{stem}_ci_low": lo, f"{stem}_ci_high": hi}
