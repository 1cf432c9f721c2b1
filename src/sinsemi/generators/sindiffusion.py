"""SinDiffusion (Wang et al. 2022): one eps-prediction DDPM on the whole image, finest scale only.

A patch-level UNet (:class:`sinsemi.nets.unet.PatchUNet`: width 64 channels, mult 1, 2, 4, one res
block per level, no attention) learns eps(x_t, t) on the full training image (a batch of copies,
all resized each step to one random size, see below) with the simple MSE loss, 1000 linear betas,
AdamW lr 5e-4 (constant), EMA 0.9999 (the official training script). Sampling is ancestral with
guided-diffusion's fixed "large" variance (beta_t), optionally respaced to fewer steps
(improved-DDPM respacing), x_0 clipped to the data range. Its receptive field (~101 px) covers a
96 px image, so it tends to reproduce the image: that is the method's known failure mode on small
images, not a bug here.

Checked against WeilunWang/SinDiffusion: ``scripts/train_arbitray_image.sh`` (lr 5e-4, 1000 linear
steps, 64 channels, mult 1,2,4, one res block, batch 16), ``image_train.py`` (``lr_anneal_steps``
50000 = the step count; AdamW, weight decay 0), ``guided_diffusion/train_util.py`` ``TrainLoop``
(EMA 0.9999 every step; ``_anneal_lr`` is commented out, so the lr stays constant; and in
``forward_backward`` every step resizes the batch bicubically to round(H u) x round(W v),
u, v ~ U(0.75, 1.25), rounded down to a multiple of 4: ``random_resize`` = 0.25, the default;
0 trains at the image size only, this project's earlier behaviour),
``guided_diffusion/image_datasets.py`` (the image as [0, 1] -> [-1, 1]).

Deviation on purpose: ``intensity: standardised`` (default) trains on the per-channel
standardised image with x_0 clipped to its range widened by 10 %; ``intensity: raw`` restores the
official [0, 1] -> [-1, 1] units with x_0 clipped to [-1, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from sinsemi.errors import InputError
from sinsemi.generators.common.diffusion import DiffusionGenerator, Schedule, TrainSpec, ancestral_step, train_loop
from sinsemi.nets.unet import PatchUNet
from sinsemi.seeding import randn_per_sample


def random_resize_size(size: tuple[int, int], factors: tuple[float, float]) -> tuple[int, int]:
    """(h, w) -> 4 * floor(round(h u) / 4), 4 * floor(round(w v) / 4) (at least 4): the official
    per-step training size (``guided_diffusion/train_util.py`` ``TrainLoop.forward_backward``)."""
    return tuple(max(4, 4 * (round(n * f) // 4)) for n, f in zip(size, factors))


class SinDiffusion(DiffusionGenerator):
    name = "sindiffusion"

    def __init__(self, runtime=None, *, width: int = 64, channel_mult: tuple = (1, 2, 4), res_blocks: int = 1,
                 timesteps: int = 1000, schedule: str = "linear", steps: int = 50_000, batch_size: int = 16,
                 lr: float = 5e-4, ema_decay: float = 0.9999, min_size: int = 8, random_resize: float = 0.25,
                 intensity: str = "standardised"):
        super().__init__(runtime, width=width, channel_mult=list(channel_mult), res_blocks=res_blocks,
                         timesteps=timesteps, schedule=schedule, steps=steps, batch_size=batch_size, lr=lr,
                         ema_decay=ema_decay, min_size=min_size, random_resize=random_resize, intensity=intensity)
        for key in ("width", "res_blocks", "timesteps", "steps", "batch_size"):
            if int(self.params[key]) < 1:
                raise InputError(f"sindiffusion: {key} must be >= 1, got {self.params[key]}")
        if not 0.0 <= float(random_resize) < 1.0:
            raise InputError(f"sindiffusion: random_resize must be in [0, 1), got {random_resize}")
        if intensity not in ("standardised", "raw"):
            raise InputError(f"sindiffusion: intensity must be 'standardised' or 'raw', got {intensity!r}")
        self.schedule = Schedule.make(schedule, int(timesteps))
        self.clip = (-10.0, 10.0)

    def build(self, channels: int, image_size: tuple[int, int]) -> None:
        p = self.params
        down = 2 ** (len(p["channel_mult"]) - 1)
        if min(image_size) < max(int(p["min_size"]), down):
            raise InputError(f"sindiffusion: image {image_size[0]}x{image_size[1]} is too small for its UNet "
                             f"({len(p['channel_mult'])} levels need at least {max(int(p['min_size']), down)} px per side)")
        self.net = PatchUNet(channels, int(p["width"]), tuple(int(m) for m in p["channel_mult"]), int(p["res_blocks"]))

    def _fit(self, x: torch.Tensor, seed: int, ckpt_dir: Path) -> None:
        p, dev = self.params, self.runtime.device
        self.clip = self._clip_range(x)
        B, T = int(p["batch_size"]), self.schedule.T
        image = x[None].to(dev)
        r = float(p["random_resize"])

        def loss_fn(net, gen, step):
            x0 = image
            if r > 0:  # official TrainLoop.forward_backward: one random size per step, multiple of 4
                u = (1 - r) + 2 * r * torch.rand(2, generator=gen, dtype=torch.float64)
                size = random_resize_size(tuple(image.shape[-2:]), (float(u[0]), float(u[1])))
                if size != tuple(image.shape[-2:]):
                    x0 = F.interpolate(image, size=size, mode="bicubic", align_corners=False)
            x0 = x0.expand(B, -1, -1, -1)
            t = torch.randint(T, (B,), generator=gen)
            noise = torch.randn(x0.shape, generator=gen).to(dev)
            eps = net(self.schedule.q_sample(x0, t, noise), t.to(dev))
            return (eps - noise).pow(2).mean()

        steps = self.steps(int(p["steps"]))
        spec = TrainSpec(loss_fn=loss_fn, steps=steps, lr=float(p["lr"]), seed=seed, ema_decay=float(p["ema_decay"]),
                         optimizer="adamw", fingerprint=self.fingerprint(x, seed, steps))
        self.net = train_loop(self.net, spec, self.runtime, ckpt_dir, desc="sindiffusion",
                              on_snapshot=self.snapshot_writer(ckpt_dir)).model

    def _sample_batch(self, gens, *, steps: int | None = None, variance: str = "large", **unknown) -> tuple[torch.Tensor, int]:
        if unknown:
            raise InputError(f"sindiffusion: unknown sampler setting(s) {sorted(unknown)} (known: steps, variance)")
        sch = self.schedule.respace(None if steps is None else int(steps))
        lo, hi = self.clip
        dev = self.runtime.device
        x = randn_per_sample(gens, (self.channels, *self.image_size))
        for i in reversed(range(sch.T)):
            ii = torch.full((x.shape[0],), i, dtype=torch.long)
            t_orig = sch.timesteps[ii].to(dev)  # the net was trained on the original timesteps
            eps = self.net(x.to(dev), t_orig).float().cpu()
            x0 = sch.x0_from_eps(x, ii, eps).clamp(lo, hi)
            x = ancestral_step(sch, x0, x, i, randn_per_sample(gens, x.shape[1:]) if i > 0 else None, variance)
        return x, sch.T

    def _extra_state(self) -> dict:
        return {"clip": torch.tensor(self.clip)}

    def _load_extra(self, state: Mapping[str, Any]) -> None:
        self.clip = tuple(float(v) for v in state["clip"].tolist())
