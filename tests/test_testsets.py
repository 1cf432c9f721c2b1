"""Test sets: the paper-style set (noise + flips of the reference pair) and the random-defect set."""

from __future__ import annotations

import json

import pytest
import torch

from sinsemi.data.optics import make_reference_pair
from sinsemi.data.testsets import _flip, paper_test_set, random_defect_test_set
from sinsemi.errors import InputError


@pytest.fixture(scope="module")
def pair():
    return make_reference_pair("line_pair", seed=0)


def test_paper_set_shapes_and_masks(pair):
    ts = paper_test_set(pair, seed=0)
    assert ts.images.shape == (50, 1, 96, 96) and ts.masks.shape == (50, 96, 96) and ts.masks.dtype == torch.bool
    assert len(ts.names) == len(ts.meta) == 50 == len(ts)
    assert [m["source"] for m in ts.meta] == ["defect"] * 25 + ["clean"] * 25
    assert not ts.masks[25:].any()  # defect-free images have empty masks
    assert all(int(m.sum()) == int(pair.mask.sum()) for m in ts.masks[:25])
    json.dumps(ts.meta), json.dumps(ts.info)
    assert 0.0 <= float(ts.images.min()) and float(ts.images.max()) <= 1.0
    # several flips are used, and each mask is flipped with its image
    assert len({m["flip"] for m in ts.meta}) >= 3
    for img, mask, m in zip(ts.images, ts.masks, ts.meta):
        src = pair.defect if m["source"] == "defect" else pair.clean
        assert (img - _flip(src, m["flip"])).abs().max() < 8 / 255  # noise of 1 gray level std
        if m["source"] == "defect":
            assert torch.equal(mask, _flip(pair.mask, m["flip"]))


def test_paper_set_is_seeded(pair):
    a, b, c = paper_test_set(pair, seed=0, n_per_class=3), paper_test_set(pair, seed=0, n_per_class=3), paper_test_set(pair, seed=1, n_per_class=3)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert not torch.equal(a.images[0], a.images[1])  # each image its own noise


def test_paper_set_rejects_bad_arguments(pair):
    with pytest.raises(InputError):
        paper_test_set(pair, n_per_class=0)
    with pytest.raises(InputError):
        paper_test_set(pair, noise_std=-1.0)


def test_random_set_defects_and_masks():
    ts = random_defect_test_set(16, seed=0)
    assert ts.images.shape == (16, 1, 96, 96) and ts.masks.shape == (16, 96, 96)
    counts = [len(m["defects"]) for m in ts.meta]
    assert set(counts) <= {0, 1, 2, 3} and len(set(counts)) >= 3
    for mask, m in zip(ts.masks, ts.meta):
        assert bool(mask.any()) == (len(m["defects"]) > 0)  # empty mask iff no defect
        assert {d["kind"] for d in m["defects"]} <= {"bridge", "open"}
    json.dumps(ts.meta), json.dumps(ts.info)
    # defects at different places in different images
    assert len({tuple(torch.nonzero(m).float().mean(0).round().tolist()) for m in ts.masks if m.any()}) >= 5


def test_random_set_is_seeded_and_per_sample():
    a = random_defect_test_set(6, seed=3)
    b = random_defect_test_set(4, seed=3)
    assert torch.equal(a.images[:4], b.images) and torch.equal(a.masks[:4], b.masks)
    assert not torch.equal(random_defect_test_set(2, seed=4).images, a.images[:2])


def test_random_set_rejects_bad_arguments():
    with pytest.raises(InputError):
        random_defect_test_set(0)
    with pytest.raises(InputError):
        random_defect_test_set(2, kinds=("crack",))
    with pytest.raises(InputError):
        random_defect_test_set(2, preset="nope")
