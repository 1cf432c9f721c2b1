"""Downstream segmentation: IoU conventions, the augmentation baseline's data, a tiny U-Net fit."""

from __future__ import annotations

import dataclasses
import logging

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
    from sinsemi.metrics.segmentation import train_and_score

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
    from sinsemi.metrics.segmentation import fill_with_flips

    x = torch.rand(3, 1, 8, 8)
    m = x[:, 0] > 0.5
    fx, fm = fill_with_flips(x, m, 8)
    assert fx.shape == (8, 1, 8, 8) and fm.shape == (8, 8, 8)
    torch.testing.assert_close(fx[:3], x)
    torch.testing.assert_close(fx[3:6], x.flip(-1))
    torch.testing.assert_close(fx[6:8], x[:2].flip(-2))
    assert torch.equal(fm, fx[:, 0] > 0.5)  # every mask still sits on its image
    assert fill_with_flips(x, m, 100)[0].shape[0] == 12  # at most the 4 flips of each


def test_seg_score_defect_iou_recall_false_and_empty_flag():
    from sinsemi.metrics.segmentation import SegScore

    true = torch.zeros(4, 32, 32, dtype=torch.bool)
    true[0, 4:8, 4:8] = True
    true[0, 20:24, 20:24] = True          # image 0: two defects
    true[1, 10:14, 10:14] = True          # image 1: one defect
    pred = torch.zeros_like(true)
    pred[0, 4:8, 4:8] = True              # finds one of image 0's two
    pred[2, 0:3, 0:3] = True              # a false detection on clean image 2
    pred[2, 28:31, 28:31] = True          # and another
    s = SegScore.of(pred, true)
    assert s.n_defect == 2 and s.n_clean == 2
    assert s.iou_defect == pytest.approx((0.5 + 0.0) / 2) and s.recall == pytest.approx(1 / 3)
    assert s.false_per_clean == pytest.approx(1.0) and s.empty_on_defect == pytest.approx(0.5) and not s.empty_artifact
    assert s.iou.mean == pytest.approx((0.5 + 0 + 0 + 1) / 4)  # the paper's convention: empty vs empty = 1
    empty = SegScore.of(torch.zeros_like(true), true)
    assert empty.empty_artifact and empty.iou.mean == pytest.approx(0.5) and empty.iou_defect == 0.0


def test_val_iou_selection_and_time_budget(tiny_image):
    """select=val_iou keeps the best validation epoch; max_seconds stops early."""
    from sinsemi.metrics.segmentation import train_unet

    x = torch.stack([tiny_image] * 20)
    m = torch.zeros(20, 32, 32, dtype=torch.bool)
    m[:, 14:18, 12:20] = True
    cfg = SegConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 8), epochs=50, batch_size=10, lr=1e-2,
                    val_fraction=0.2, patience=50, select="val_iou", max_seconds=0.0, loss="balanced")
    _, info = train_unet(x, m, cfg, seed=0)
    assert info["epochs_run"] == 1 and info["best_epoch"] == 1 and "val_iou" in info["history"][0]
    with pytest.raises(InputError, match="select"):
        SegConfig.from_dict({"select": "best"})


def test_unet_epochs_reach_the_log_and_the_callback(tiny_image, caplog):
    """Every epoch's loss goes to the log (INFO) and to on_epoch (the job's logger), as in the history."""
    from sinsemi.metrics.segmentation import train_unet

    x = torch.stack([tiny_image] * 10)
    m = torch.zeros(10, 32, 32, dtype=torch.bool)
    m[:, 14:18, 12:20] = True
    cfg = SegConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(8, 8, 8), epochs=2, batch_size=10,
                    val_fraction=0.2, patience=5)
    got = []
    with caplog.at_level(logging.INFO, logger="sinsemi.segmentation"):
        _, info = train_unet(x, m, cfg, seed=0, on_epoch=got.append)
    assert [{k: r[k] for k in h} for r, h in zip(got, info["history"])] == info["history"] and len(got) == 2
    assert all(r["seconds"] >= 0 for r in got)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("U-Net epoch")]
    assert len(lines) == 2 and lines[1].startswith("U-Net epoch 2/2: train loss ")
    assert f"{info['history'][1]['train_loss']:.4f}" in lines[1] and "val loss" in lines[1]


def _quick_seg(mask: str):
    from sinsemi.jobs.eval import eval_config
    from tests.test_eval import compose

    return eval_config(compose("profile=quick", f"downstream.mask={mask}"))


@pytest.mark.slow
@pytest.mark.parametrize("mask", ["footprint", "optical"])
def test_quick_unet_learns_random_position_defects(mask):
    """The quick U-Net trained on 128 simulator images with random-position defects and exact masks:
    IoU over defect images >= 0.8 on the 100-image random test set (about 3 min on one core)."""
    from sinsemi.data.testsets import random_defect_test_set
    from sinsemi.evaluation import load_references
    from sinsemi.evaluation.testsets import build_test_sets
    from sinsemi.metrics.segmentation import train_and_score

    cfg = _quick_seg(mask)
    sets = build_test_sets(cfg, load_references(cfg.reference))
    tr = random_defect_test_set(cfg.downstream.n_train, seed=5000, mask=mask)  # seeds disjoint from the test set's
    out = train_and_score(tr.images, tr.masks, sets, cfg.downstream, seed=0)
    s = out.scores["random"]
    print(f"quick U-Net, {mask} masks, random set: IoU {s.iou.mean:.3f}, defect images {s.iou_defect:.3f}, "
          f"recall {s.recall:.3f}, false/clean {s.false_per_clean:.3f}, epochs {out.epochs_run} (best {out.best_epoch})")
    assert s.iou_defect >= 0.8 and not s.empty_artifact


@pytest.mark.slow
def test_quick_augmentation_baseline_learns():
    from sinsemi.evaluation import load_references
    from sinsemi.evaluation.masks import baseline_train_set
    from sinsemi.evaluation.testsets import build_test_sets
    from sinsemi.metrics.segmentation import train_and_score

    cfg = _quick_seg("footprint").replace(test_set=dataclasses.replace(_quick_seg("footprint").test_set, random_n=0))
    refs = load_references(cfg.reference)
    tx, tm = baseline_train_set(refs, cfg.downstream, 0)
    s = train_and_score(tx, tm, build_test_sets(cfg, refs), cfg.downstream, seed=0).scores["paper"]
    assert s.iou_defect >= 0.8 and s.recall >= 0.9 and s.false_per_clean <= 0.1


def test_smp_bce_dice_equals_the_hand_written_formula():
    """smp's DiceLoss (binary, smooth 0.5) + BCE is the former hand-written BCE + (1 - (2 sum pt + 1) / (sum p + sum t + 1))."""
    from sinsemi.metrics.segmentation import seg_loss

    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 16, 16, generator=g)
    target = (torch.rand(4, 16, 16, generator=g) > 0.8).float()

    def old(lg, t, pos_weight=1.0, balanced=False):
        w = torch.tensor(pos_weight) if balanced else None
        bce = torch.nn.functional.binary_cross_entropy_with_logits(lg, t, pos_weight=w)
        if t.sum() == 0:
            return bce
        p = torch.sigmoid(lg)
        return bce + 1 - (2 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)

    for t in (target, torch.zeros_like(target), target[:1].expand(4, -1, -1).contiguous()):
        assert abs(float(seg_loss(logits, t, "bce_dice")) - float(old(logits, t))) < 1e-6
        assert abs(float(seg_loss(logits, t, "balanced", 7.0)) - float(old(logits, t, 7.0, True))) < 1e-6
    assert float(seg_loss(logits, target, "bce")) == float(torch.nn.functional.binary_cross_entropy_with_logits(logits, target))


def test_downstream_over_seeds_counts_collapsed_unets(monkeypatch):
    """Several U-Net seeds: IoU is the mean of the seeds' means, the ± the seeds' std; a U-Net that
    predicts empty masks on the defect images is counted in unet_collapsed and kept in the mean."""
    import sinsemi.metrics.segmentation as seg

    true = torch.zeros(4, 8, 8, dtype=torch.bool)
    true[:2, 2:5, 2:5] = True   # 2 defect images, 2 clean
    preds = {0: true.clone(), 1: torch.zeros_like(true), 2: true.clone()}  # seed 1 collapses

    def fake(train_x, train_m, sets, cfg, *, seed, on_epoch=None):
        scores = {k: seg.SegScore.of(preds[seed], y) for k, (x, y) in sets.items()}
        return seg.SegOutcome(iou={k: s.iou for k, s in scores.items()}, epochs_run=1, best_val_loss=None, train_seconds=0.0,
                              n_train=int(train_x.shape[0]), scores=scores, best_epoch=1)

    monkeypatch.setattr(seg, "train_and_score", fake)
    cfg = seg.SegConfig(encoder_depth=3, decoder_channels=(8, 8, 8), seeds=3, n_train=None)
    m = seg.downstream(torch.zeros(4, 1, 8, 8), true, {"new_places": (torch.zeros(4, 1, 8, 8), true)}, cfg, seed=0, train_set="x")
    assert m.seeds == [0, 1, 2] and m.seed_iou["new_places"] == [1.0, 0.5, 1.0]
    assert m.iou["new_places"][0] == pytest.approx(2.5 / 3)
    assert m.seed_std("new_places") == pytest.approx(float(torch.tensor([1.0, 0.5, 1.0]).std()))
    d = m.to_dict()
    assert d["unet_collapsed"] == 1 and d["seg_empty_flag"] == ["new_places"]
    assert d["iou_new_places_recall"] == pytest.approx(2 / 3) and d["iou_new_places_seed_std"] > 0
