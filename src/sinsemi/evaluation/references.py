"""The two references of an evaluation: a defect image, a defect-free image, the defect's mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sinsemi.errors import InputError
from sinsemi.evaluation.config import ReferenceSpec


@dataclass
class References:
    """``defect`` and ``clean`` (C, H, W) float, ``mask`` (H, W) bool of the defect (None: unknown,
    the labeller's is used) and ``source`` (where they came from, for metrics.json)."""

    defect: torch.Tensor
    clean: torch.Tensor
    mask: torch.Tensor | None
    source: str
    simulated: bool = False   # the simulator's preset pair (its noise-free defect residual is known)


def load_references(spec: ReferenceSpec) -> References:
    """The two references from disk, or the simulator's preset pair when both files are None."""
    from sinsemi.data.io import load_mask, load_trainable

    if bool(spec.defect) != bool(spec.clean):
        raise InputError("give both reference.defect and reference.clean, or neither (then the simulator's pair is used)")
    if spec.defect:
        # constant or oversized references are refused (a flat defect-free image would make every
        # structure of every sample a "defect")
        kw = dict(max_side=spec.max_side, setting="reference.max_side")
        defect = load_trainable(spec.defect, name=f"reference.defect={spec.defect}", **kw)
        clean = load_trainable(spec.clean, name=f"reference.clean={spec.clean}", **kw)
        if defect.shape != clean.shape:
            raise InputError(f"reference.defect={spec.defect} is {tuple(defect.shape)} (C, H, W) but reference.clean={spec.clean} "
                             f"is {tuple(clean.shape)}: they must match")
        mask = load_mask(spec.mask, like=defect) if spec.mask else None
        return References(defect, clean, mask, f"files: {spec.defect}, {spec.clean}")
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair(preset=str(spec.preset), seed=int(spec.preset_seed))
    mask = load_mask(spec.mask, like=pair.defect) if spec.mask else pair.mask.bool()
    return References(pair.defect.float(), pair.clean.float(), mask, f"simulator preset {spec.preset} seed {spec.preset_seed}",
                      simulated=not spec.mask)


def check_compatible(images: torch.Tensor, ref: torch.Tensor, what: str = "samples") -> None:
    """Images (N, C, H, W) must have the reference's (C, H, W)."""
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(ref.shape):
        raise InputError(f"{what} are {tuple(images.shape[1:])} (C, H, W) but the references are {tuple(ref.shape)}: "
                         "sizes and channels must match")


def check_size(refs: References, lpips_net: str) -> None:
    """The references are large enough for every metric: LPIPS's backbone (its last feature map)
    and SIFID's (two feature positions) need a minimum side; smaller images would fail deep inside."""
    from sinsemi.metrics.lpips import MIN_SIDE

    need = max(MIN_SIDE.get(lpips_net, 0), MIN_SIDE["sifid"])
    h, w = refs.defect.shape[-2:]
    if min(h, w) < need:
        raise InputError(f"the references ({refs.source}) are {h}x{w} px: too small to evaluate (LPIPS '{lpips_net}' and "
                         f"SIFID need at least {need} px a side)")
