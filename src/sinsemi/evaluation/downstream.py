"""The downstream task: a U-Net trained on generated images (or the references' augmentations),
scored on the test sets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sinsemi.errors import InputError
from sinsemi.evaluation.references import References
from sinsemi.evaluation.testsets import TestSets
from sinsemi.metrics.segmentation import SegConfig


@dataclass
class DownstreamMetrics:
    """Per test set: IoU mean/std (paper convention) and the defect-level scores
    (:class:`~sinsemi.metrics.segmentation.SegScore` as a dict); training facts. ``empty`` flags
    the test sets on which the U-Net predicted empty masks for >= 90 % of the defect images."""

    train_set: str
    mask: str
    iou: dict[str, tuple[float, float]]
    epochs: int
    train_seconds: float
    n_train: int
    encoder: str
    test_sizes: dict[str, int] = field(default_factory=dict)
    scores: dict[str, dict] = field(default_factory=dict)
    best_epoch: int | None = None
    loss: str = ""

    @property
    def empty(self) -> list[str]:
        return [k for k, v in self.scores.items() if v.get("empty_on_defect") is not None and v["empty_on_defect"] >= 0.9]

    def to_dict(self) -> dict:
        out: dict = {"seg_train_set": self.train_set, "seg_mask": self.mask}
        for name, (mean, std) in self.iou.items():
            key = "iou" if name == "paper" else f"iou_{name}"
            out[f"{key}_mean"], out[f"{key}_std"] = mean, std
            sc = self.scores.get(name) or {}
            for k in ("iou_defect", "recall", "false_per_clean", "empty_on_defect"):
                if k in sc:
                    out[f"{key}_{k}"] = sc[k]
        out.update({"seg_epochs": self.epochs, "seg_best_epoch": self.best_epoch, "seg_train_seconds": round(self.train_seconds, 2),
                    "seg_n_train": self.n_train, "seg_encoder": self.encoder, "seg_loss": self.loss,
                    "seg_test_sizes": self.test_sizes, "seg_empty_flag": self.empty})
        return out


def fill_with_flips(x: torch.Tensor, m: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) images and (N, H, W) masks -> n of them: the originals, then their horizontal,
    vertical and double flips in turn (at most 4N distinct images)."""
    flips = [(), (-1,), (-2,), (-2, -1)]
    xs, ms = [], []
    for dims in flips:
        xs.append(x.flip(dims) if dims else x)
        ms.append(m.flip(dims) if dims else m)
        if sum(len(t) for t in xs) >= n:
            break
    return torch.cat(xs)[:n], torch.cat(ms)[:n]


def baseline_train_set(refs: References, scfg: SegConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmentation baseline's training set: ``n_baseline`` noisy flips of the two references,
    the defect reference's mask by the ``downstream.mask`` convention."""
    from sinsemi.evaluation.masks import reference_mask
    from sinsemi.metrics.segmentation import augment_references

    return augment_references(refs.defect, refs.clean, reference_mask(refs, scfg.mask), int(scfg.n_baseline), seed=seed,
                              noise_max=float(scfg.baseline_noise_max))


def downstream(train_x: torch.Tensor, train_m: torch.Tensor, sets: TestSets, scfg: SegConfig, *, seed: int,
               train_set: str, on_epoch: Callable[[dict], None] | None = None) -> DownstreamMetrics:
    """Train the U-Net on (train_x (N, C, H, W), train_m (N, H, W)) and score it on ``sets``;
    ``on_epoch`` gets each training epoch's record (:func:`~sinsemi.metrics.seg_train.train_unet`)."""
    from sinsemi.metrics.seg_train import train_and_score

    if scfg.n_train is not None and train_x.shape[0] > scfg.n_train:
        train_x, train_m = train_x[:scfg.n_train], train_m[:scfg.n_train]
    elif scfg.n_train is not None and train_x.shape[0] < scfg.n_train:
        # Fewer samples than the baseline's augmentations: fill up with their flips (the baseline's
        # augmentations are flips too), so both U-Nets get the same number of optimiser steps.
        train_x, train_m = fill_with_flips(train_x, train_m, scfg.n_train)
    if not sets:
        raise InputError("segmentation is on but no test set is enabled (test_set.paper, test_set.random.n, test_set.dir)")
    out = train_and_score(train_x, train_m, sets, scfg, seed=seed, on_epoch=on_epoch)
    return DownstreamMetrics(train_set=train_set, mask=scfg.mask, iou={k: (r.mean, r.std) for k, r in out.iou.items()}, epochs=out.epochs_run,
                             train_seconds=out.train_seconds, n_train=out.n_train, encoder=scfg.encoder,
                             test_sizes={k: int(v[0].shape[0]) for k, v in sets.items()},
                             scores={k: _score_dict(v) for k, v in out.scores.items()}, best_epoch=out.best_epoch, loss=scfg.loss)


def _score_dict(s) -> dict:
    return {"iou_defect": s.iou_defect, "recall": s.recall, "false_per_clean": s.false_per_clean,
            "empty_on_defect": s.empty_on_defect, "n_defect": s.n_defect, "n_clean": s.n_clean}
