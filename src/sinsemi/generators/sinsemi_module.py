"""Lightning pieces of SinSEMI: the single-image DataModule and the all-scales LightningModule.

One training iteration ("step"): draw a scale s over ALL scales (the finest included; uniformly as in
the paper, or with probabilities proportional to ``scale_weights``), a
batch of copies of the standardised image at s as x0, x1 = the upsampled coarser level (s > 0) or
fresh N(0, I) (s = 0), t and z ~ N(0, I) per copy; regress v(x_t, t, s) on u_t (eq. 1-3).

Options beyond the paper (all off by default = the paper's recipe):
- ``crop``: each copy is a random ``crop`` x ``crop`` window (the same window of x0 and x1) of the
  levels larger than that. The net sees 33 px, so a window keeps what it learns per pixel while a step
  costs (crop / size)^2 of a full one.
- ``scale_weights``: how often each scale is drawn. Scale 0 (55 px, from noise) makes the whole layout
  and is the cheapest step; the bridges of the finer scales only refine (experiments/results/study_scales_sw622.md), so weighting
  scale 0 up buys more where the samples are worst, and makes an average step cheaper.
- ``t_sampling``: ``uniform`` t ~ U[0, 1) (paper) or ``ends``: t = (1 - cos(pi u)) / 2, which puts more
  draws near t = 0 (fine detail) and t = 1 (the start of every scale), where the target is hardest.
Every draw of step k comes from a generator seeded with (seed, k), so a resumed run repeats an
uninterrupted one exactly.

DDP (``trainer.devices`` = W > 1, Lightning's ``ddp`` strategy): ``batch_size`` B is the GLOBAL
batch. Every rank draws the whole step-k batch from the (seed, k) generator and keeps its own
B / W copies (rank r: rows r*B/W .. (r+1)*B/W - 1), so rank r's draws are a function of
(seed, k, r, W) and the ranks' draws together are exactly the single-process draws. Each rank's loss
is the mean over its rows and DDP averages the gradients over ranks, so the averaged gradient is the
single-process gradient of the mean over all B rows (up to float summation order): W processes train
the same weights as one process at batch B, each doing 1/W of the net's work. (Independent per-rank
streams seeded with (seed, k, r) would give other, equally valid draws, but weights that depend on
W; and a checkpoint resumed at another W would not continue the same run.) The scale s is one draw
per step, the same on every rank, so all ranks run the same scale and the same collectives.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from sinsemi.flow.path import bridge_point
from sinsemi.generators.params import module_hparams
from sinsemi.nets.sinddm import SinDDMNet
from sinsemi.seeding import derive_seed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, writing through :func:`sinsemi.data.io.save_checkpoint_file`: a temp
    file beside the target (``.last.ckpt.partial-*``), then ``os.replace``. Lightning's own writer
    stages the bytes in the system temp dir and moves them over (a copy, not a rename, when that is
    another file system), so a kill could leave a half-written ``last.ckpt`` or a stray temp file
    that no restart removes; this one never does, and its temp is what ``remove_partials`` cleans."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"storage_options is not supported by {type(self).__name__}")
        from sinsemi.data.io import save_checkpoint_file

        save_checkpoint_file(checkpoint, path)


class Snapshots(L.Callback):
    """Calls ``write(step, ema_net)`` on rank 0 after the optimiser steps in ``steps`` (the budget
    curves' points: the model as it stands there, kept beside the final one)."""

    def __init__(self, steps, write):
        self.steps, self.write = set(int(s) for s in steps), write

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step in self.steps and trainer.is_global_zero:
            self.write(int(trainer.global_step), pl_module.ema.module)


class _Repeat(Dataset):
    """The pyramid, ``length`` times (one item per training step)."""

    def __init__(self, item: dict, length: int):
        self.item, self.length = item, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return self.item


class PyramidDataModule(L.LightningDataModule):
    """Serves the single training image: its standardised pyramid levels and conditions.

    ``levels[s]``: (C, h_s, w_s); ``conditions[s]``: level s-1 upsampled to (h_s, w_s), None at s = 0.
    """

    def __init__(self, levels: list[torch.Tensor], conditions: list[torch.Tensor | None], steps: int):
        super().__init__()
        self.levels, self.conditions, self.steps = levels, conditions, steps

    def train_dataloader(self) -> DataLoader:
        item = {f"x0_{s}": lv for s, lv in enumerate(self.levels)}
        item.update({f"x1_{s}": c for s, c in enumerate(self.conditions) if c is not None})
        return DataLoader(_Repeat(item, max(1, self.steps)), batch_size=None, shuffle=False, num_workers=0)


class SinSEMIModule(L.LightningModule):
    """One SinDDM net v(x, t, s) over all scales, trained with SB-CFM; EMA copy used for sampling.

    hparams are primitives only (safe for ``torch.load(weights_only=True)`` on resume).
    """

    def __init__(self, **hparams):
        """``hparams``: channels, n_scales, seed, image_sha256, precision and the ``module`` fields of
        :class:`~sinsemi.generators.params.SinSEMIParams` (missing ones: their defaults); see
        :func:`~sinsemi.generators.params.module_hparams`."""
        super().__init__()
        self.save_hyperparameters(module_hparams(**hparams))
        self._hparams_name = "kwargs"  # what Lightning recorded when it read them off the signature (same checkpoints)
        hp = self.hparams
        self.net = SinDDMNet(hp.channels, hp.width, multiscale=True, padding_mode=hp.padding_mode, kernel=hp.kernel)
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(hp.ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)
        self.register_buffer("scale_counts", torch.zeros(hp.n_scales, dtype=torch.long))
        if hp.channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.ema.to(memory_format=torch.channels_last)
        self._forward = self.net.forward  # a bound method, not a module: the state_dict keeps one copy

    def on_fit_start(self) -> None:
        # the speed path (generator.fast_kernels / compile): CPU only; same weights, same state_dict keys
        cpu = self.device.type == "cpu"
        self.net.set_fast_kernels(bool(self.hparams.get("fast_kernels")) and cpu)
        if self.hparams.get("compile"):
            self._forward = torch.compile(self.net.forward)  # compiles the forward; the weights stay self.net's

    # -- draws of one step: a pure function of (seed, step), this rank's rows of them
    def _draws(self, step: int, batch: dict, rank: int = 0, world: int = 1
               ) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s, x0, x1, t, z) of step ``step`` for rank ``rank`` of ``world``: x0, x1, z (B/W, C, h, w),
        t (B/W,); the global batch B = ``batch_size`` is drawn whole and sliced (module docstring)."""
        hp = self.hparams
        if hp.batch_size % world:
            raise ValueError(f"batch_size={hp.batch_size} is not divisible by the world size {world}")
        g = torch.Generator(device="cpu").manual_seed(derive_seed(int(hp.seed), int(step), stream="step"))
        weights = hp.get("scale_weights") or None
        if weights:  # P(s) proportional to scale_weights[s]
            s = int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=g))
        else:  # uniform (paper)
            s = int(torch.randint(hp.n_scales, (1,), generator=g))
        x0 = batch[f"x0_{s}"].float()[None].expand(hp.batch_size, -1, -1, -1)
        x1 = batch[f"x1_{s}"].float()[None].expand_as(x0) if s > 0 else None
        crop = int(hp.get("crop", 0) or 0)
        h, w = x0.shape[-2:]
        if crop and (h > crop or w > crop):
            ch, cw = min(crop, h), min(crop, w)
            top = torch.randint(h - ch + 1, (hp.batch_size,), generator=g).tolist()
            left = torch.randint(w - cw + 1, (hp.batch_size,), generator=g).tolist()
            x0 = torch.stack([x0[i, :, a:a + ch, b:b + cw] for i, (a, b) in enumerate(zip(top, left))])
            if x1 is not None:
                x1 = torch.stack([x1[i, :, a:a + ch, b:b + cw] for i, (a, b) in enumerate(zip(top, left))])
        shape = tuple(x0.shape)
        if x1 is None:
            x1 = torch.randn(shape, generator=g)
        u = torch.rand(hp.batch_size, generator=g)
        t = u if hp.get("t_sampling", "uniform") == "uniform" else 0.5 * (1.0 - torch.cos(torch.pi * u))
        z = torch.randn(shape, generator=g)
        rows = slice(rank * (hp.batch_size // world), (rank + 1) * (hp.batch_size // world))
        x0 = x0[rows]
        dev = x0.device
        return s, x0, x1[rows].to(dev), t[rows].to(dev), z[rows].to(dev)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        s, x0, x1, t, z = self._draws(self.global_step, batch, self.global_rank, self.trainer.world_size)
        p = bridge_point(x0, x1, t, z, sigma=self.hparams.sigma, eps=self.hparams.t_eps)
        x_t = p.x_t.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else p.x_t
        v = self._forward(x_t, t, torch.full_like(t, s))
        loss = F.mse_loss(v.float(), p.u_t)  # eq. 3
        self.scale_counts[s] += 1
        # sync_dist: the mean over ranks = the loss of the global batch (what one process would log)
        n = x0.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n, sync_dist=True)
        self.log(f"train/loss_s{s}", loss, on_step=True, on_epoch=False, batch_size=n, sync_dist=True)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # here, not in on_train_batch_end: ModelCheckpoint saves before the module's batch-end hook
        self.ema.update_parameters(self.net)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.milestones), gamma=self.hparams.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
