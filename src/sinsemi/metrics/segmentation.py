"""Downstream defect segmentation: a U-Net trained on generated images, scored by per-image IoU.

The paper's downstream task: train a U-Net on N generated images with the labeller's masks and
measure IoU on a held-out test set; the baseline trains on augmentations (noise + flips) of the two
references. Per-image IoU = |P ∩ T| / |P ∪ T|, with IoU = 1 when prediction and truth are both empty
(the published ``calculate_iou`` convention) and 0 when exactly one is empty; mean ± std over images.

The whole task in one module: settings (:class:`SegConfig`), scoring (IoU via ``smp.metrics``,
defect-level :class:`SegScore`), data (mask checks, the augmentation baseline's training set), the
model (:class:`SegModel`), the training loop (:func:`train_unet`; loss via ``smp.losses``) and the
evaluation step (:func:`downstream`: one U-Net per training seed, scored on every test set, summed up
as mean ± std over the seeds with collapsed U-Nets counted). No Lightning, no Hydra.
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sinsemi.errors import InputError

log = logging.getLogger("sinsemi.segmentation")


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
    mask: str = "optical"                # mask convention: "optical" (the paper's labelling) | "footprint" (geometric)
    seeds: int = 3                       # U-Nets trained per row (seeds seed, seed + 1, ...): figures are mean ± std over them
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
        for name in ("epochs", "batch_size", "n_baseline", "seeds"):
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
    """IoU of each pair of masks (N, H, W) -> (N,) float: TP / (TP + FP + FN) per image
    (``smp.metrics``); both empty -> 1 (``zero_division``), one empty -> 0."""
    import segmentation_models_pytorch as smp

    if pred.shape != true.shape:
        raise InputError(f"prediction masks {tuple(pred.shape)} and truth masks {tuple(true.shape)} differ in shape")
    tp, fp, fn, tn = smp.metrics.get_stats(pred.bool().long()[:, None], true.bool().long()[:, None], mode="binary")
    return smp.metrics.iou_score(tp, fp, fn, tn, reduction="none", zero_division=1.0)[:, 0].float()


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
        return self.empty_on_defect is not None and self.empty_on_defect >= COLLAPSED_EMPTY

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


# ----------------------------------------------------------------------------- training
def seg_loss(logits: torch.Tensor, target: torch.Tensor, kind: str, pos_weight: float = 1.0) -> torch.Tensor:
    """Loss on logits (N, H, W): BCE; ``bce_dice`` adds 1 - soft Dice over the batch,
    Dice = (2 sum(p t) + 1) / (sum p + sum t + 1), p = sigmoid(logits) (``smp.losses.DiceLoss``,
    binary, smooth 0.5: smp's Tversky form (I + s) / (I + (FP + FN) / 2 + s) is this formula; a
    batch without defect pixels adds 0); ``balanced`` weights defect pixels by ``pos_weight`` and
    adds the Dice term."""
    w = torch.tensor(pos_weight, device=logits.device) if kind == "balanced" else None
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=w)
    if kind == "bce":
        return bce
    return bce + _dice_loss()(logits, target)


@functools.lru_cache(maxsize=1)
def _dice_loss() -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    return smp.losses.DiceLoss(mode="binary", from_logits=True, smooth=0.5)


def balance_weight(masks: torch.Tensor, cap: float = 100.0) -> float:
    """Background / defect pixel ratio of training masks (N, H, W), clipped to [1, cap]."""
    pos = float(masks.float().sum())
    return float(min(cap, max(1.0, (masks.numel() - pos) / max(pos, 1.0))))


def train_unet(images: torch.Tensor, masks: torch.Tensor, cfg: SegConfig, *, seed: int = 0,
               on_epoch: Callable[[dict], None] | None = None) -> tuple[SegModel, dict]:
    """Fit a U-Net on images (N, C, H, W) with masks (N, H, W). Returns the model with the weights of
    the best validation epoch (the last epoch when there is no validation split) and a summary.

    Every epoch's record (epoch, train_loss, val_loss / val_iou with a validation split, seconds)
    goes to the log (INFO) and to ``on_epoch`` (e.g. a W&B logger) when given."""
    masks = check_masks(masks, images, name="training masks")
    n = images.shape[0]
    if n < 1:
        raise InputError("no training images for the segmentation U-Net")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_val = int(round(cfg.val_fraction * n)) if n >= 10 else 0
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    x_tr, y_tr = images[tr_idx].float(), masks[tr_idx].float()
    x_va, y_va = images[val_idx].float(), masks[val_idx].float()
    std = float(x_tr.std()) or 1.0
    model = SegModel(cfg, in_channels=images.shape[1], mean=float(x_tr.mean()), std=std).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    pw = balance_weight(masks[tr_idx])

    def loss_fn(logits, target):
        return seg_loss(logits, target, cfg.loss, pw)

    best, best_state, best_epoch, since_best, history = None, None, None, 0, []
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(x_tr.shape[0], generator=g)
        tot = 0.0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            xb = x_tr[idx]
            sig = torch.rand(xb.shape[0], 1, 1, 1, generator=g) * cfg.train_noise_max
            xb = xb + sig * torch.randn(xb.shape, generator=g)
            loss = loss_fn(model(xb.to(cfg.device)), y_tr[idx].to(cfg.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
        rec = {"epoch": epoch, "train_loss": tot / x_tr.shape[0]}
        if n_val:
            model.eval()
            with torch.no_grad():
                vl = sum(float(loss_fn(model(x_va[i:i + 64].to(cfg.device)), y_va[i:i + 64].to(cfg.device))) * len(x_va[i:i + 64])
                         for i in range(0, n_val, 64)) / n_val
            rec["val_loss"] = vl
            if cfg.select == "val_iou":
                rec["val_iou"] = IoUResult.of(model.predict(x_va, threshold=cfg.threshold), y_va.bool()).mean
            crit = -rec["val_iou"] if cfg.select == "val_iou" else vl
            if best is None or crit < best:
                best, best_state, best_epoch, since_best = crit, copy.deepcopy(model.state_dict()), epoch, 0
            else:
                since_best += 1
        history.append(rec)
        _report_epoch(rec, cfg.epochs, time.perf_counter() - t0, on_epoch)
        if n_val and since_best >= cfg.patience:
            log.info("early stopping after epoch %d (best epoch %d)", epoch, best_epoch)
            break
        if cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds:
            log.info("segmentation time budget (%.0f s) reached after epoch %d", cfg.max_seconds, epoch)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    best_val_loss = min((r["val_loss"] for r in history if "val_loss" in r), default=None)
    return model, {"epochs_run": epoch, "best_val_loss": best_val_loss, "best_epoch": best_epoch if n_val else epoch,
                   "train_seconds": time.perf_counter() - t0, "n_train": int(x_tr.shape[0]), "history": history}


def _report_epoch(rec: dict, epochs: int, seconds: float, on_epoch: Callable[[dict], None] | None) -> None:
    """One INFO line per epoch (a CPU epoch takes seconds: the loss shows the U-Net is learning)."""
    parts = [f"train loss {rec['train_loss']:.4f}"]
    parts += [f"val loss {rec['val_loss']:.4f}"] if "val_loss" in rec else []
    parts += [f"val IoU {rec['val_iou']:.3f}"] if "val_iou" in rec else []
    log.info("U-Net epoch %d/%d: %s (%.1f s)", rec["epoch"], epochs, ", ".join(parts), seconds)
    if on_epoch is not None:
        on_epoch({**rec, "seconds": round(seconds, 2)})


def train_and_score(images: torch.Tensor, masks: torch.Tensor, test_sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
                    cfg: SegConfig, *, seed: int = 0, on_epoch: Callable[[dict], None] | None = None) -> SegOutcome:
    """Train on (images, masks) and score each named test set (images, masks): per-image IoU and
    the defect-level scores of :class:`SegScore`. ``on_epoch``: see :func:`train_unet`."""
    model, info = train_unet(images, masks, cfg, seed=seed, on_epoch=on_epoch)
    ious, scores = {}, {}
    for name, (x, y) in test_sets.items():
        y = check_masks(y, x, name=f"test-set '{name}' masks")
        if x.shape[1:] != images.shape[1:]:
            raise InputError(f"test set '{name}' images are {tuple(x.shape[1:])} but the training images are {tuple(images.shape[1:])}")
        scores[name] = SegScore.of(model.predict(x, threshold=cfg.threshold), y)
        ious[name] = scores[name].iou
    return SegOutcome(iou=ious, epochs_run=info["epochs_run"], best_val_loss=info["best_val_loss"],
                      train_seconds=info["train_seconds"], n_train=info["n_train"], history=info["history"], scores=scores,
                      best_epoch=info["best_epoch"])


# ----------------------------------------------------------------------------- the evaluation step
COLLAPSED_EMPTY = 0.9  # a U-Net is collapsed on a test set when it predicts empty masks on >= this share of its defect images


@dataclass
class DownstreamMetrics:
    """A row's downstream figures over ``len(seeds)`` U-Nets (training seeds ``seeds``), per test set:

    * ``iou[name] = (mean, std)``: mean over seeds of each U-Net's mean per-image IoU (paper
      convention), and the population std of the per-image IoUs of all seeds pooled (one seed: the
      paper's ± over images);
    * ``seed_iou[name]``: each seed's mean IoU, whose sample std (:meth:`seed_std`) is the ± a table prints;
    * ``scores[name]``: the defect-level scores of :class:`SegScore`, each the mean over the seeds;
    * ``collapsed[name]``: how many of the U-Nets predicted empty masks on >= 90 % of the set's
      defect images (counted into the means, never dropped).
    """

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
    seeds: list[int] = field(default_factory=list)
    seed_iou: dict[str, list[float]] = field(default_factory=dict)
    collapsed: dict[str, int] = field(default_factory=dict)
    unet_collapsed: int = 0              # U-Nets (seeds) that collapsed on at least one test set
    settings: dict | None = None         # what the figures depend on (EvalConfig.seg_settings), recorded as seg_settings

    @property
    def empty(self) -> list[str]:
        """The test sets on which at least one U-Net collapsed."""
        return [k for k, v in self.collapsed.items() if v]

    def seed_std(self, name: str) -> float | None:
        """Sample std (ddof 1) of the seeds' mean IoUs on test set ``name``; None with one seed."""
        v = self.seed_iou.get(name) or []
        if len(v) < 2:
            return None
        return float(torch.tensor(v, dtype=torch.float64).std(unbiased=True))

    def to_dict(self) -> dict:
        out: dict = {"seg_train_set": self.train_set, "seg_mask": self.mask}
        for name, (mean, std) in self.iou.items():
            key = "iou" if name == "paper" else f"iou_{name}"
            out[f"{key}_mean"], out[f"{key}_std"] = mean, std
            out[f"{key}_seed_std"] = self.seed_std(name)
            out[f"{key}_per_seed"] = self.seed_iou.get(name)
            sc = self.scores.get(name) or {}
            for k in ("iou_defect", "recall", "false_per_clean", "empty_on_defect"):
                if k in sc:
                    out[f"{key}_{k}"] = sc[k]
        out.update({"seg_epochs": self.epochs, "seg_best_epoch": self.best_epoch, "seg_train_seconds": round(self.train_seconds, 2),
                    "seg_n_train": self.n_train, "seg_encoder": self.encoder, "seg_loss": self.loss,
                    "seg_test_sizes": self.test_sizes, "seg_empty_flag": self.empty, "seg_seeds": self.seeds,
                    "unet_collapsed": self.unet_collapsed})
        if self.settings is not None:
            out["seg_settings"] = self.settings
        return out

    @classmethod
    def of(cls, outs: list[SegOutcome], seeds: list[int], *, train_set: str, scfg: SegConfig,
           test_sizes: dict[str, int]) -> DownstreamMetrics:
        """Sum up one :class:`SegOutcome` per training seed."""
        names = list(outs[0].iou)
        iou, seed_iou, scores, collapsed = {}, {}, {}, {}
        for name in names:
            pooled = torch.cat([o.iou[name].per_image for o in outs])
            seed_iou[name] = [float(o.iou[name].mean) for o in outs]
            iou[name] = (float(torch.tensor(seed_iou[name], dtype=torch.float64).mean()), float(pooled.std(unbiased=False)))
            dicts = [_score_dict(o.scores[name]) for o in outs]
            scores[name] = {k: dicts[0][k] if k.startswith("n_") else _mean_or_none([d[k] for d in dicts]) for k in dicts[0]}
            collapsed[name] = sum(bool(o.scores[name].empty_artifact) for o in outs)
        n_collapsed = sum(any(o.scores[n].empty_artifact for n in names) for o in outs)
        return cls(train_set=train_set, mask=scfg.mask, iou=iou, epochs=outs[0].epochs_run,
                   train_seconds=sum(o.train_seconds for o in outs), n_train=outs[0].n_train, encoder=scfg.encoder,
                   test_sizes=test_sizes, scores=scores, best_epoch=outs[0].best_epoch, loss=scfg.loss, seeds=list(seeds),
                   seed_iou=seed_iou, collapsed=collapsed, unet_collapsed=int(n_collapsed))


def _mean_or_none(values: list) -> float | None:
    if any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


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


def downstream(train_x: torch.Tensor, train_m: torch.Tensor, sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
               scfg: SegConfig, *, seed: int, train_set: str, on_epoch: Callable[[dict], None] | None = None) -> DownstreamMetrics:
    """Train ``scfg.seeds`` U-Nets (seeds ``seed``, ``seed + 1``, ...) on (train_x (N, C, H, W),
    train_m (N, H, W)) and score each on every test set of ``sets`` (name -> images, masks);
    ``on_epoch`` gets each training epoch's record (:func:`train_unet`) with its ``unet_seed``."""
    if scfg.n_train is not None and train_x.shape[0] > scfg.n_train:
        train_x, train_m = train_x[:scfg.n_train], train_m[:scfg.n_train]
    elif scfg.n_train is not None and train_x.shape[0] < scfg.n_train:
        # Fewer samples than the baseline's augmentations: fill up with their flips (the baseline's
        # augmentations are flips too), so both U-Nets get the same number of optimiser steps.
        train_x, train_m = fill_with_flips(train_x, train_m, scfg.n_train)
    if not sets:
        raise InputError("segmentation is on but no test set is enabled (test_set.new_places.n, test_set.paper, test_set.random.n, test_set.dir)")
    seeds = [int(seed) + k for k in range(int(scfg.seeds))]
    outs = []
    for s in seeds:
        hook = None if on_epoch is None else (lambda rec, s=s: on_epoch({**rec, "unet_seed": s}))
        outs.append(train_and_score(train_x, train_m, sets, scfg, seed=s, on_epoch=hook))
    return DownstreamMetrics.of(outs, seeds, train_set=train_set, scfg=scfg,
                                test_sizes={k: int(v[0].shape[0]) for k, v in sets.items()})


def _score_dict(s: SegScore) -> dict:
    return {"iou_defect": s.iou_defect, "recall": s.recall, "false_per_clean": s.false_per_clean,
            "empty_on_defect": s.empty_on_defect, "n_defect": s.n_defect, "n_clean": s.n_clean}
