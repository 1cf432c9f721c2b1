"""Evaluation metrics: SIFID, LPIPS (novelty and pairwise diversity), pixel diversity, offline weights.

``sinsemi.metrics.sifid`` is both a module and, here, the function of the same name: the package
attribute is rebound to the function, so use ``from sinsemi.metrics.sifid import ...`` for the
module's other names. The LPIPS and weights names are imported lazily (they load lpips/torchvision).
"""

from __future__ import annotations

import importlib

from sinsemi.metrics.sifid import SIFIDResult, frechet_distance, sifid

_LAZY = {
    "lpips_to_reference": "sinsemi.metrics.lpips",
    "pairwise_lpips": "sinsemi.metrics.lpips",
    "pixel_diversity": "sinsemi.metrics.lpips",
    "LPIPSResult": "sinsemi.metrics.lpips",
    "PairwiseLPIPSResult": "sinsemi.metrics.lpips",
    "lpips_model": "sinsemi.metrics.weights",
    "inception_model": "sinsemi.metrics.weights",
}

__all__ = sorted(["SIFIDResult", "frechet_distance", "sifid", *_LAZY])


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sinsemi.metrics' has no attribute '{name}'")
