"""Downstream segmentation: IoU conventions, the augmentation baseline's data, a tiny U-Net fit."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import binary_jaccard_index

from sinsemi.errors import InputError
from sinsemi.metrics.segmentation import (IoUResult, SegConfig, SegModel, augment_references, check_masks,
                                          per_image_iou)


def test_iou_conventions():
    empty = torch.zeros(1, 8, 8, dtype=torch.bool)
    full = torch.ones(1, 8, 8, dtype=torch.bool)
    half = torch.zeros(1, 8, 8, dtype=torch.bool)
    half[:, :4] = True
    assert per_image_iou(empty, empty).item() == 1.0  # both empty: perfect
    assert per_image_iou(empty, full).item() == 0.0   # missed defect
    assert per_image_iou(full, empty).item() == 0.0   # false alarm
    assert per_image_iou(half, full).item() == pytest.approx(0.5)


def test_iou_matches_torchmetrics_per_image():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(12, 16, 16, generator=g) > 0.7
    t = torch.rand(12, 16, 16, generator=g) > 0.6
    t[3] = False
    p[3] = False  # one empty/empty pair
    ours = per_image_iou(p, t)
    ref = torch.stack([binary_jaccard_index(p[i].int(), t[i].int(), zero_division=1.0) for i in range(12)])
    torch.testing.assert_close(ours, ref.float())
    r = IoUResult.of(p, t)
    assert r.mean == pytest.approx(float(ours.mean())) and r.std == pytest.approx(float(ours.std(unbiased=False)))


def test_iou_shape_mismatch_is_clear():
    with pytest.raises(InputError, match="differ in shape"):
        per_image_iou(torch.zeros(2, 4, 4, dtype=torch.bool), torch.zeros(2, 4, 5, dtype=torch.bool))


def test_non_binary_mask_rejected():
    with pytest.raises(InputError, match="not binary"):
        check_masks(torch.tensor([[[0, 2], [1, 0]]]), torch.zeros(1, 1, 2, 2))


def test_augment_references_half_and_half_deterministic(tiny_image):
    clean = tiny_image.clone()
    defect = tiny_image.clone()
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[10:14, 3:9] = True
    x, m = augment_references(defect, clean, mask, 10, seed=3, noise_max=2 / 255)
    assert x.shape == (10, 1, 32, 32) and m.shape == (10, 32, 32) and m.dtype == torch.bool
    assert all(m[i].sum() == mask.sum() for i in range(0, 10, 2))      # defect half keeps its (flipped) mask
    assert all(m[i].sum() == 0 for i in range(1, 10, 2))               # clean half: empty masks
    x2, m2 = augment_references(defect, clean, mask, 4, seed=3, noise_max=2 / 255)
    torch.testing.assert_close(x2, x[:4])                              # per-sample seeds
    assert torch.equal(m2, m[:4])
    assert (x - torch.stack([defect, clean] * 5)).abs().max() > 0      # noise was added


def test_segconfig_validation():
    with pytest.raises(InputError, match="unknown segmentation"):
        SegConfig.from_dict({"epochs": 1, "bogus": 3})
    with pytest.raises(InputError, match="decoder_channels"):
        SegConfig.from_dict({"encoder_depth": 3, "decoder_channels": [8, 8]})
    with pytest.raises(InputError, match="from scratch"):
        SegConfig.from_dict({"encoder_weights": "imagenet"})


def test_unet_handles_sizes_not_multiple_of_depth():
    cfg = SegConfig(encoder_depth=3, decoder_channels=(8, 8, 8))
    m = SegModel(cfg, in_channels=1)
    assert m(torch.rand(2, 1, 30, 37)).shape == (2, 30, 37)


def test_tiny_unet_learns_an_obvious_defect():
    """Bright squares on noise: a few epochs must beat the trivial all-empty prediction."""
    from sinsemi.metrics.seg_train import train_and_score

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n = 48
    x = 0.3 + 0.02 * torch.randn(n, 1, 32, 32, generator=g)
    m = torch.zeros(n, 32, 32, dtype=torch.bool)
    for i in range(0, n, 2):
        r, c = torch.randint(4, 22, (2,), generator=g).tolist()
        m[i, r:r + 8, c:c + 8] = True
    x[m[:, None]] += 0.3
    cfg = SegConfig(encoder_depth=3, decoder_channels=(16, 8, 8), epochs=8, batch_size=8, lr=3e-3, val_fraction=0.0)
    out = train_and_score(x[:40], m[:40], {"held": (x[40:], m[40:])}, cfg, seed=0)
    trivial = IoUResult.of(torch.zeros_like(m[40:]), m[40:]).mean  # 0.5: the empty half scores 1
    print("tiny U-Net IoU", out.iou["held"].mean, "trivial", trivial)
    assert out.iou["held"].mean > trivial + 0.2
    out2 = train_and_score(x[:40], m[:40], {"held": (x[40:], m[40:])}, cfg, seed=0)
    assert out2.iou["held"].mean == out.iou["held"].mean  # seeded, deterministic


def test_fill_with_flips_tops_up_a_small_generated_set():
    """Fewer samples than n_train: the originals, then their flips (masks flipped with them)."""
    from sinsemi.evaluation.downstream import fill_with_flips

    x = torch.rand(3, 1, 8, 8)
    m = x[:, 0] > 0.5
    fx, fm = fill_with_flips(x, m, 8)
    assert fx.shape == (8, 1, 8, 8) and fm.shape == (8, 8, 8)
    torch.testing.assert_close(fx[:3], x)
    torch.testing.assert_close(fx[3:6], x.flip(-1))
    torch.testing.assert_close(fx[6:8], x[:2].flip(-2))
    assert torch.equal(fm, fx[:, 0] > 0.5)  # every mask still sits on its image
    assert fill_with_flips(x, m, 100)[0].shape[0] == 12  # at most the 4 flips of each
