"""Downstream defect segmentation: a U-Net trained on generated images, scored by per-image IoU.

The paper's downstream task: train a U-Net on N generated images with the labeller's masks and
measure IoU on a held-out test set; the baseline trains on augmentations (noise + flips) of the two
references. Per-image IoU = |P ∩ T| / |P ∪ T|, with IoU = 1 when prediction and truth are both empty
(the published ``calculate_iou`` convention) and 0 when exactly one is empty; mean ± std over images.

This module holds the model, the data and the scoring; the training loop is in
:mod:`sinsemi.metrics.seg_train`. No Lightning, no Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sinsemi.errors import InputError


@dataclass(frozen=True)
class SegConfig:
    """U-Net and training settings (the ``segmentation`` config group)."""

    encoder: str = "resnet18"
    encoder_weights: str | None = None   # None: train from scratch (no download, ever)
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    val_fraction: float = 0.05
    patience: int = 20                   # epochs without validation-loss improvement before stopping
    train_noise_max: float = 1.0 / 255.0  # per-image Gaussian noise std ~ U(0, this) during training (paper)
    n_train: int | None = 1000           # generated images used (None: all)
    n_baseline: int = 1000               # augmentations of the two references for the baseline
    baseline_noise_max: float = 1.0 / 255.0
    threshold: float = 0.5               # sigmoid probability above which a pixel is defect
    loss: str = "bce"                    # "bce" (the paper) | "bce_dice" (BCE + soft Dice: faster on tiny defects)
                                         # | "balanced" (BCE weighted by the training set's background/defect ratio + soft Dice)
    select: str = "val_loss"             # the epoch kept: lowest validation loss | highest validation IoU ("val_iou")
    max_seconds: float | None = None     # stop training after this many seconds (a CPU budget; makes the run timing-dependent)
    mask: str = "footprint"              # mask convention: "footprint" (geometric) | "optical" (the paper's labelling)
    device: str = "cpu"

    @classmethod
    def from_dict(cls, d: dict | None) -> SegConfig:
        d = {k: v for k, v in dict(d or {}).items() if k not in ("name", "enabled")}
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown segmentation setting(s): {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(int(c) for c in d["decoder_channels"])
        cfg = cls(**d)
        if len(cfg.decoder_channels) != cfg.encoder_depth:
            raise InputError(f"segmentation.decoder_channels needs {cfg.encoder_depth} entries (encoder_depth), got {list(cfg.decoder_channels)}")
        for name in ("epochs", "batch_size", "n_baseline"):
            if int(getattr(cfg, name)) <= 0:
                raise InputError(f"segmentation.{name} must be positive, got {getattr(cfg, name)!r}")
        if cfg.mask not in ("footprint", "optical"):
            raise InputError(f"downstream.mask must be 'footprint' or 'optical', got {cfg.mask!r}")
        if cfg.loss not in ("bce", "bce_dice", "balanced"):
            raise InputError(f"segmentation.loss must be 'bce', 'bce_dice' or 'balanced', got {cfg.loss!r}")
        if cfg.select not in ("val_loss", "val_iou"):
            raise InputError(f"segmentation.select must be 'val_loss' or 'val_iou', got {cfg.select!r}")
        if not (0 <= cfg.val_fraction < 1) or cfg.lr <= 0:
            raise InputError(f"segmentation.val_fraction must be in [0, 1) and lr > 0, got {cfg.val_fraction}, {cfg.lr}")
        if cfg.encoder_weights not in (None, "none"):
            raise InputError(f"segmentation.encoder_weights={cfg.encoder_weights!r}: only training from scratch "
                             "(encoder_weights=null) is supported offline; pretrained encoders would need a download")
        return cfg


# ----------------------------------------------------------------------------- IoU
def per_image_iou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """IoU of each pair of masks (N, H, W) -> (N,) float; both empty -> 1, one empty -> 0."""
    if pred.shape != true.shape:
        raise InputError(f"prediction masks {tuple(pred.shape)} and truth masks {tuple(true.shape)} differ in shape")
    p, t = pred.bool().flatten(1), true.bool().flatten(1)
    inter = (p & t).sum(1).float()
    union = (p | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


@dataclass
class IoUResult:
    """Per-image IoU (N,), and its mean and (population) std."""

    per_image: torch.Tensor
    mean: float
    std: float

    @classmethod
    def of(cls, pred: torch.Tensor, true: torch.Tensor) -> IoUResult:
        ious = per_image_iou(pred, true)
        return cls(per_image=ious, mean=float(ious.mean()), std=float(ious.std(unbiased=False)))


@dataclass
class SegScore:
    """One test set's scores: ``iou`` (paper convention: every image, empty/empty = 1), ``iou_defect``
    (images whose truth is non-empty only), ``recall`` (true defects, i.e. 8-connected components of
    the truth, touched by the prediction), ``false_per_clean`` (predicted components per image whose
    truth is empty) and ``empty_on_defect`` (fraction of defect images predicted empty)."""

    iou: IoUResult
    iou_defect: float | None
    recall: float | None
    false_per_clean: float | None
    empty_on_defect: float | None
    n_defect: int
    n_clean: int

    @property
    def empty_artifact(self) -> bool:
        """The U-Net learnt nothing: empty predictions on >= 90 % of the defect images."""
        return self.empty_on_defect is not None and self.empty_on_defect >= 0.9

    @classmethod
    def of(cls, pred: torch.Tensor, true: torch.Tensor) -> SegScore:
        """Predicted and true masks (N, H, W)."""
        import numpy as np
        from scipy import ndimage

        ious = IoUResult.of(pred, true)
        has = true.flatten(1).any(1)
        structure = np.ones((3, 3), dtype=bool)
        found = total = false = 0
        for p, t, d in zip(pred.bool().cpu().numpy(), true.bool().cpu().numpy(), has.tolist()):
            if d:
                lab, n = ndimage.label(t, structure=structure)
                total += n
                found += len(set(np.unique(lab[p]).tolist()) - {0})
            else:
                false += ndimage.label(p, structure=structure)[1]
        nd, nc = int(has.sum()), int((~has).sum())
        empty = (~pred.bool().flatten(1).any(1))[has]
        return cls(iou=ious, iou_defect=float(ious.per_image[has].mean()) if nd else None,
                   recall=found / total if total else None, false_per_clean=false / nc if nc else None,
                   empty_on_defect=float(empty.float().mean()) if nd else None, n_defect=nd, n_clean=nc)


# ----------------------------------------------------------------------------- data
def check_masks(masks: torch.Tensor, images: torch.Tensor, *, name: str = "masks") -> torch.Tensor:
    """Masks (N, H, W) must be binary and match the images (N, C, H, W)."""
    if masks.dtype != torch.bool:
        vals = torch.unique(masks)
        if not bool(((vals == 0) | (vals == 1)).all()):
            raise InputError(f"{name} are not binary: found values {vals[:8].tolist()}")
        masks = masks.bool()
    if masks.ndim != 3 or masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]:
        raise InputError(f"{name} {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    return masks


def augment_references(defect: torch.Tensor, clean: torch.Tensor, defect_mask: torch.Tensor, n: int, *,
                       seed: int, noise_max: float = 1.0 / 255.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The baseline training set: ``n`` augmentations (random h/v flips + Gaussian noise of std
    ~ U(0, noise_max)) of the defect reference (with its mask) and the clean one (empty mask), half each.
    Returns images (n, C, H, W) and masks (n, H, W) bool; sample i uses its own generator (seed + i)."""
    from sinsemi.seeding import generators_for

    imgs, masks = [], []
    empty = torch.zeros_like(defect_mask, dtype=torch.bool)
    for i, g in enumerate(generators_for([seed + i for i in range(n)])):
        x, m = (defect, defect_mask.bool()) if i % 2 == 0 else (clean, empty)
        flips = torch.rand(2, generator=g)
        if flips[0] < 0.5:
            x, m = x.flip(-1), m.flip(-1)
        if flips[1] < 0.5:
            x, m = x.flip(-2), m.flip(-2)
        sigma = float(torch.rand(1, generator=g)) * noise_max
        imgs.append(x + sigma * torch.randn(x.shape, generator=g))
        masks.append(m)
    return torch.stack(imgs), torch.stack(masks)


# ----------------------------------------------------------------------------- model
class SegModel(torch.nn.Module):
    """smp U-Net with the training set's standardisation and padding to a multiple of 2^depth."""

    def __init__(self, cfg: SegConfig, in_channels: int, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.net = smp.Unet(encoder_name=cfg.encoder, encoder_weights=None, encoder_depth=cfg.encoder_depth,
                            decoder_channels=list(cfg.decoder_channels), in_channels=in_channels, classes=1)
        self.multiple = 2 ** cfg.encoder_depth
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in their own scale -> logits (N, H, W)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        x = (x - self.mean) / self.std
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        return self.net(x)[:, 0, :h, :w]

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, threshold: float = 0.5, batch_size: int = 64) -> torch.Tensor:
        """Binary masks (N, H, W) bool."""
        self.eval()
        dev = self.mean.device
        out = [torch.sigmoid(self(x[i:i + batch_size].to(dev))).cpu() > threshold for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out)


@dataclass
class SegOutcome:
    """One trained U-Net scored on each test set."""

    iou: dict[str, IoUResult]
    epochs_run: int
    best_val_loss: float | None
    train_seconds: float
    n_train: int
    history: list[dict] = field(default_factory=list)
    scores: dict[str, SegScore] = field(default_factory=dict)
    best_epoch: int | None = None

    def summary(self, prefix: str = "iou") -> dict:
        out = {}
        for name, r in self.iou.items():
            key = prefix if name == "paper" else f"{prefix}_{name}"
            out[f"{key}_mean"] = r.mean
            out[f"{key}_std"] = r.std
        return out
