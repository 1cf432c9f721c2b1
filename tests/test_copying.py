"""Copy measures (same-place rate, nearest-copy distance) and bootstrap intervals on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.evaluation.copying import copy_distances, copy_metrics, mask_centroids, same_place_rate
from sinsemi.evaluation.intervals import bootstrap_ci, mean_ci, median_ci, rate_ci


@pytest.fixture(scope="module")
def scene():
    """A line pattern (period 12 px) with noise, a 'defect' blob at (30, 20) and its clean twin."""
    g = torch.Generator().manual_seed(0)
    h = w = 64
    x = torch.arange(w, dtype=torch.float64)
    lines = (0.5 + 0.2 * torch.sin(2 * torch.pi * x / 12)).expand(h, w)
    clean = lines + 0.01 * torch.randn(h, w, generator=g, dtype=torch.float64)
    defect = lines + 0.01 * torch.randn(h, w, generator=g, dtype=torch.float64)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[27:33, 17:23] = True
    defect = defect + 0.3 * mask
    big = torch.nn.functional.pad(defect[None, None], (8, 8, 8, 8), mode="reflect")[0, 0]  # for exact shifted crops
    return {"defect": defect[None].float(), "clean": clean[None].float(), "mask": mask, "big": big.float(), "g": g}


def test_exact_copies(scene):
    d, m = scene["defect"], scene["mask"]
    samples = d[None].repeat(3, 1, 1, 1)
    cm = copy_metrics(samples, [[(30.0, 20.0)]] * 3, d, scene["clean"], m)
    assert cm.distance == [0.0, 0.0, 0.0] and cm.same_place_rate == 1.0
    assert cm.distance_median == 0.0 and cm.distance_p10 == 0.0
    assert mask_centroids(m) == [(29.5, 19.5)]


@pytest.mark.parametrize("shift", [(2, 0), (0, -3), (5, 4)])
def test_shifted_copies_are_copies(scene, shift):
    """A copy shifted by a few px (cut from the padded image) is at distance ~0 within the ±8 px window;
    beyond the window it is not."""
    dy, dx = shift
    big, d = scene["big"], scene["defect"]
    s = big[8 + dy:8 + dy + 64, 8 + dx:8 + dx + 64][None, None]
    assert float(copy_distances(s, d, scene["clean"])[0]) < 1e-6
    assert float(copy_distances(s, d, scene["clean"], max_shift=1)[0]) > 0.3 or max(abs(dy), abs(dx)) <= 1


def test_clean_reference_and_moved_defect(scene):
    """The clean reference is about 1 from the training image (the scale itself at shift 0); a sample
    with the defect moved scores same-place 0 and is no exact copy."""
    d, c, m = scene["defect"], scene["clean"], scene["mask"]
    dc = float(copy_distances(c[None], d, c)[0])
    assert 0.5 < dc <= 1.0 + 1e-6
    moved = c.clone()
    moved[0, 27:33, 45:51] += 0.3   # the same blob 28 px to the right, fresh noise around it
    cm = copy_metrics(moved[None], [[(29.5, 47.5)]], d, c, m)
    assert cm.same_place_rate == 0.0 and cm.distance[0] > 0.5
    assert same_place_rate([[(29.5, 47.5)], [(30.0, 21.0)]], [(29.5, 19.5)], radius=8) == 0.5
    assert same_place_rate([[], []], [(29.5, 19.5)]) is None


def test_copy_distance_bad_inputs(scene):
    with pytest.raises(InputError, match="max_shift"):
        copy_distances(scene["defect"][None], scene["defect"], scene["clean"], max_shift=40)
    with pytest.raises(InputError, match="identical"):
        copy_distances(scene["defect"][None], scene["defect"], scene["defect"])
    with pytest.raises(InputError, match="must be"):
        copy_distances(scene["defect"], scene["defect"], scene["clean"])


def test_bootstrap_intervals_are_seeded_and_cover():
    rng = np.random.default_rng(1)
    v = rng.normal(2.0, 1.0, 200)
    lo, hi = mean_ci(v, seed=3)
    assert (lo, hi) == mean_ci(v, seed=3) and lo < v.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.25)   # the normal-theory width
    rlo, rhi = mean_ci(v, scale=2.0, seed=3)
    assert rlo == pytest.approx(lo / 2) and rhi == pytest.approx(hi / 2)
    mlo, mhi = median_ci(v)
    assert mlo < np.median(v) < mhi
    assert mean_ci([5.0]) == (5.0, 5.0)                                  # one sample: no spread
    assert rate_ci([1, 0, 1], [1, 1, 1])[1] == 1.0
    assert rate_ci([0, 0], [0, 0]) is None                               # no detections in any resample
    with pytest.raises(InputError):
        bootstrap_ci(lambda i: 0.0, 0)


def test_copy_distance_chunks_agree(scene, monkeypatch):
    import sinsemi.evaluation.copying as cp

    g = torch.Generator().manual_seed(2)
    x = scene["defect"][None] + 0.02 * torch.randn(5, 1, 64, 64, generator=g)
    whole = cp.copy_distances(x, scene["defect"], scene["clean"], max_shift=3)
    monkeypatch.setattr(cp, "CHUNK_ELEMENTS", 2 * 64 * 64)   # two samples a chunk
    assert torch.equal(whole, cp.copy_distances(x, scene["defect"], scene["clean"], max_shift=3))
