"""Time SIFID + LPIPS for 1000 samples at 96x96 on this machine (target: <= 2 min on CPU).

Samples are the reference plus seeded noise (the metrics' cost does not depend on content).
Uses the offline weights when installed, else random backbones of the same shape (said so).
"""

from __future__ import annotations

import time

import torch

N_SAMPLES = 1000
SIZE = 96


def _models():
    from sinsemi.errors import InputError
    from sinsemi.metrics.weights import inception_model, lpips_model

    try:
        return inception_model(), lpips_model("alex")
    except InputError as e:
        print(f"  (offline weights missing: {e}; timing random backbones of the same shape)")
        return inception_model(allow_random=True), lpips_model("alex", allow_random=True)


def run(n: int = N_SAMPLES, size: int = SIZE) -> None:
    from sinsemi.metrics.lpips import lpips_to_reference, pairwise_lpips, pixel_diversity
    from sinsemi.metrics.sifid import sifid

    g = torch.Generator().manual_seed(0)
    x = torch.arange(size).float()
    reference = (0.5 + 0.2 * torch.cos(2 * torch.pi * x / 20))[None, None, :].expand(1, size, size).clone()
    samples = (reference + 0.03 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)

    t0 = time.perf_counter()
    inception, alex = _models()
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = sifid(samples, reference, model=inception)
    t_sifid = time.perf_counter() - t0
    t0 = time.perf_counter()
    lp = lpips_to_reference(samples, reference, model=alex)
    t_lpips = time.perf_counter() - t0
    t0 = time.perf_counter()
    pw = pairwise_lpips(samples, model=alex, max_pairs=n)
    t_pair = time.perf_counter() - t0
    t0 = time.perf_counter()
    pixel_diversity(samples, reference)
    t_pix = time.perf_counter() - t0

    total = t_sifid + t_lpips
    print(f"metrics: {n} samples {size}x{size}, torch threads {torch.get_num_threads()}, "
          f"weights: SIFID {s.weights!r}, LPIPS {lp.weights!r}")
    print(f"  load weights              {t_load:7.2f} s")
    print(f"  SIFID (64-d)              {t_sifid:7.2f} s")
    print(f"  LPIPS to reference        {t_lpips:7.2f} s")
    print(f"  SIFID + LPIPS             {total:7.2f} s  (target <= 120 s: {'met' if total <= 120 else 'NOT met'})")
    print(f"  pairwise LPIPS ({pw.pairs.shape[0]} pairs) {t_pair:7.2f} s")
    print(f"  pixel diversity           {t_pix:7.2f} s")
