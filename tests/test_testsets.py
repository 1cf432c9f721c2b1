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
        assert (img - _flip(src, m["flip"])).abs().max() < 8 / 255  # noise of at most 1 gray level std
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


def test_paper_set_noise_up_to_one_gray_level(pair):
    """The published augmentations: noise std ~ U(0, 1) gray level per image, one of four flips."""
    ts = paper_test_set(pair, seed=0)
    stds = [m["noise_std_gray"] for m in ts.meta]
    assert all(0 <= s <= 1 for s in stds) and min(stds) < 0.3 and max(stds) > 0.7
    assert {m["flip"] for m in ts.meta} <= {"none", "lr", "ud", "lrud"}
    for img, m in zip(ts.images, ts.meta):  # measured noise follows the drawn std (8-bit rounding adds ~0.29)
        src = pair.defect if m["source"] == "defect" else pair.clean
        measured = float(((img - _flip(src, m["flip"])) * 255).std())
        assert measured <= m["noise_std_gray"] + 0.35


def test_paper_set_optical_masks(pair):
    """mask=optical: the paper's |blur(defect) - blur(clean)| > 5 region, ~200 px for the bridge, flipped alike."""
    from sinsemi.metrics.optical_mask import optical_mask

    ts = paper_test_set(pair, seed=0, mask="optical")
    om = optical_mask(pair.defect, pair.clean)
    assert 150 <= int(om.sum()) <= 260 and int(om.sum()) > 2 * int(pair.mask.sum())
    assert (om & pair.mask).sum() >= 0.8 * pair.mask.sum()  # it covers the footprint
    for mask, m in zip(ts.masks[:25], ts.meta[:25]):
        assert torch.equal(mask, _flip(om, m["flip"]))
    assert not ts.masks[25:].any() and ts.info["mask"] == "optical"
    with pytest.raises(InputError, match="mask convention"):
        paper_test_set(pair, mask="blob")


def test_random_set_optical_masks():
    a, b = random_defect_test_set(12, seed=0), random_defect_test_set(12, seed=0, mask="optical")
    assert torch.equal(a.images, b.images)
    for fp, op in zip(a.masks, b.masks):
        if not fp.any():
            assert not op.any()
        elif op.any():
            assert int(op.sum()) > int(fp.sum()) and (op & fp).any()  # a blurred region around the footprint
    assert sum(bool(m.any()) for m in b.masks) >= 0.7 * sum(bool(m.any()) for m in a.masks)


def test_optical_mask_of_the_real_pair(real_pair_dir):
    """The paper's labelling on its own images: ~190-200 px around the central bridge."""
    from sinsemi.data.io import load_image
    from sinsemi.metrics.optical_mask import optical_mask

    d = load_image(real_pair_dir / "line_pair_bridge_defect.png")
    c = load_image(real_pair_dir / "line_pair_no_defect.png")
    m = optical_mask(d, c)
    yy, xx = torch.nonzero(m, as_tuple=True)
    print(f"optical mask of the real pair: {int(m.sum())} px, rows {int(yy.min())}-{int(yy.max())}, cols {int(xx.min())}-{int(xx.max())}")
    assert 180 <= int(m.sum()) <= 215
    assert 36 <= int(yy.min()) and int(yy.max()) <= 59 and 34 <= int(xx.min()) and int(xx.max()) <= 57


@pytest.mark.parametrize("mask", ["footprint", "optical"])
def test_pasted_new_places_match_the_simulators_exact_masks(mask):
    """The line_pair pair treated as a user's pair: its bridge residual pasted at new places. The
    simulator, asked for bridges at the same places (line + the number of periods moved, along + the
    row offset), gives masks that agree with the pasted ones (IoU >= 0.85 per image)."""
    from sinsemi.data.layouts import Bridge
    from sinsemi.data.optics import get_preset, make_reference_pair, simulate_batch
    from sinsemi.data.testsets import _flip, optical_masks_of_batch, pasted_defect_test_set
    from sinsemi.metrics.segmentation import per_image_iou

    pair = make_reference_pair("line_pair", 0)
    t = pasted_defect_test_set(pair, 10, seed=3, mask=mask)
    assert t.images.shape == (10, 1, 96, 96) and t.info["period_px"] == pytest.approx(19.2, abs=0.1)
    scene = get_preset("line_pair").scene
    placed = [i for i, m in enumerate(t.meta) if m["placed"]]
    assert placed
    dls = [[Bridge(line=1 + round(p["periods"]), along_nm=480.0 + 10.0 * p["dy"], length_nm=50.0) for p in t.meta[i]["placed"]]
           for i in placed]
    b = simulate_batch(scene, dls, [0] * len(placed))
    exact = b.masks if mask == "footprint" else optical_masks_of_batch(scene, b, [0] * len(placed))
    exact = torch.stack([_flip(e, t.meta[i]["flip"]) for e, i in zip(exact, placed)])
    ious = per_image_iou(t.masks[placed], exact)
    assert float(ious.min()) >= 0.85, ious
    assert all(len(m["placed"]) <= 3 for m in t.meta)
    t2 = pasted_defect_test_set(pair, 10, seed=3, mask=mask)
    assert torch.equal(t.images, t2.images) and torch.equal(t.masks, t2.masks)   # seeded


def test_new_places_for_a_preset_is_its_own_defect_kind():
    from sinsemi.data.optics import make_reference_pair
    from sinsemi.data.testsets import new_places_test_set, random_defect_test_set

    pair = make_reference_pair("line_pair", 0)
    t = new_places_test_set(pair, 5, preset="line_pair", seed=7, mask="footprint")
    ref = random_defect_test_set(5, preset="line_pair", seed=7, kinds=("bridge",), mask="footprint")
    assert t.info["kinds"] == ["bridge"] and t.info["kind"] == "new_places"
    assert torch.equal(t.masks, ref.masks)                       # the simulator's exact masks


def test_pasted_new_places_bad_inputs():
    from sinsemi.data.optics import make_reference_pair
    from sinsemi.data.testsets import pasted_defect_test_set

    pair = make_reference_pair("line_pair", 0)
    empty = type(pair)(defect=pair.defect, clean=pair.clean, mask=torch.zeros_like(pair.mask), meta={})
    with pytest.raises(InputError, match="empty"):
        pasted_defect_test_set(empty, 4)
