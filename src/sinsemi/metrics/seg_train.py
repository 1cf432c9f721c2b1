"""Training loop of the downstream U-Net: Adam, early stopping on a validation split.

Explicit loop (no Lightning): seeded split, seeded shuffling and seeded training noise, so a run is a
pure function of (images, masks, config, seed) on a given device. The epoch kept is the best one on
the validation split (lowest loss, or highest per-image IoU with ``select="val_iou"``); training
stops after ``patience`` epochs without improvement, ``epochs`` epochs or ``max_seconds``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import torch

from sinsemi.errors import InputError
from sinsemi.metrics.segmentation import IoUResult, SegConfig, SegModel, SegOutcome, SegScore, check_masks

log = logging.getLogger("sinsemi.segmentation")


def seg_loss(logits: torch.Tensor, target: torch.Tensor, kind: str, pos_weight: float = 1.0) -> torch.Tensor:
    """Loss on logits (N, H, W): BCE; ``bce_dice`` adds 1 - soft Dice over the batch (batches without
    defect pixels: BCE only); ``balanced`` weights defect pixels by ``pos_weight`` and adds the Dice term."""
    w = torch.tensor(pos_weight, device=logits.device) if kind == "balanced" else None
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=w)
    if kind == "bce" or target.sum() == 0:
        return bce
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + 1.0) / (p.sum() + target.sum() + 1.0)
    return bce + (1 - dice)


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
