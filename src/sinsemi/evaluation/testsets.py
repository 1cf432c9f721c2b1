"""The downstream U-Net's named test sets: new places, paper-style (from the references), random simulated, external."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sinsemi.errors import InputError
from sinsemi.evaluation.config import EvalConfig
from sinsemi.evaluation.references import References, check_compatible

log = logging.getLogger("sinsemi.eval")

TestSets = dict[str, tuple[torch.Tensor, torch.Tensor]]  # name -> images (N, C, H, W), masks (N, H, W) bool


def external_test_set(directory: str | Path, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of ``directory`` with their ``<stem>_mask.png`` masks: (N, C, H, W), (N, H, W) bool."""
    from sinsemi.data.io import list_images, load_image, load_mask

    files, skipped = list_images(directory)
    if skipped:
        log.warning("skipping %d non-image file(s) in %s: %s", len(skipped), directory, [p.name for p in skipped][:10])
    if not files:
        raise InputError(f"no test images found in {directory}")
    imgs, masks = [], []
    for p in files:
        mp = next((p.with_name(p.stem + "_mask" + s) for s in (".png", p.suffix) if p.with_name(p.stem + "_mask" + s).exists()), None)
        if mp is None:
            raise InputError(f"test image {p} has no mask {p.stem}_mask.png beside it")
        im = load_image(p)
        check_compatible(im[None], like, what=f"test image {p.name}")
        imgs.append(im)
        masks.append(load_mask(mp, like=im))
    return torch.stack(imgs), torch.stack(masks)


def new_places_set(cfg: EvalConfig, refs: References):
    """The new-places test set of ``refs`` (:func:`sinsemi.data.testsets.new_places_test_set`):
    the simulator's own defect kind for its preset pair, the pasted residual for any other pair."""
    from sinsemi.data.optics import ReferencePair
    from sinsemi.data.testsets import new_places_test_set

    if refs.mask is None:
        raise InputError("the new-places test set needs the defect reference's mask (reference.mask=PNG, or the labeller's)")
    pair = ReferencePair(defect=refs.defect, clean=refs.clean, mask=refs.mask.bool(), meta={"preset": refs.source})
    preset = str(cfg.reference.preset) if refs.simulated else None
    return new_places_test_set(pair, cfg.test_set.new_places_n, preset=preset, seed=int(cfg.test_set.new_places_seed),
                               mask=cfg.downstream.mask)


def build_test_sets(cfg: EvalConfig, refs: References) -> TestSets:
    """The test sets enabled in ``cfg.test_set``."""
    sets: TestSets = {}
    ts = cfg.test_set
    if ts.new_places_n > 0:
        t = new_places_set(cfg, refs)
        sets["new_places"] = (t.images.float(), t.masks.bool())
    if ts.paper:
        from sinsemi.data.optics import ReferencePair
        from sinsemi.data.testsets import paper_test_set

        if refs.mask is None:
            raise InputError("the paper-style test set needs the defect reference's mask (reference.mask=PNG)")
        pair = ReferencePair(defect=refs.defect, clean=refs.clean, mask=refs.mask.bool(), meta={"preset": refs.source})
        t = paper_test_set(pair, seed=int(cfg.seed), mask=cfg.downstream.mask)
        sets["paper"] = (t.images.float(), t.masks.bool())
    if ts.random_n > 0:
        from sinsemi.data.testsets import random_defect_test_set

        t = random_defect_test_set(ts.random_n, preset=str(cfg.reference.preset), seed=int(ts.random_seed), mask=cfg.downstream.mask)
        if tuple(t.images.shape[1:]) == tuple(refs.defect.shape):
            sets["random"] = (t.images.float(), t.masks.bool())
        else:
            log.warning("random test set skipped: simulator images %s differ from the references %s",
                        tuple(t.images.shape[1:]), tuple(refs.defect.shape))
    if ts.dir:
        sets["external"] = external_test_set(ts.dir, refs.defect)
    return sets
