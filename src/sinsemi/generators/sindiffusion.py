"""SinDiffusion (Wang et al. 2022): one eps-prediction DDPM on the whole image, finest scale only.

A patch-level UNet (:class:`sinsemi.nets.unet.PatchUNet`: width 64 channels, mult 1, 2, 4, one res
block per level, no attention) learns eps(x_t, t) on the full training image (batch of copies,
no augmentation) with the simple MSE loss, 1000 linear betas, AdamW lr 5e-4, EMA 0.9999 (the
official training script). Sampling is ancestral with guided-diffusion's fixed "large" variance
(beta_t), optionally respaced to fewer steps (improved-DDPM respacing), x_0 clipped to the data
range. Its receptive field (~101 px) covers a 96 px image, so it tends to reproduce the image:
that is the method's known failure mode on small images, not a bug here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from sinsemi.errors import InputError
from sinsemi.generators.common.diffusion import (DiffusionGenerator, Schedule, TrainSpec, ancestral_step,
                                                 data_clip_range, train_loop)
from sinsemi.nets.unet import PatchUNet
from sinsemi.seeding import randn_per_sample


class SinDiffusion(DiffusionGenerator):
    name = "sindiffusion"

    def __init__(self, runtime=None, *, width: int = 64, channel_mult: tuple = (1, 2, 4), res_blocks: int = 1,
                 timesteps: int = 1000, schedule: str = "linear", steps: int = 50_000, batch_size: int = 16,
                 lr: float = 5e-4, ema_decay: float = 0.9999, min_size: int = 8):
        super().__init__(runtime, width=width, channel_mult=list(channel_mult), res_blocks=res_blocks,
                         timesteps=timesteps, schedule=schedule, steps=steps, batch_size=batch_size, lr=lr,
                         ema_decay=ema_decay, min_size=min_size)
        for key in ("width", "res_blocks", "timesteps", "steps", "batch_size"):
            if int(self.params[key]) < 1:
                raise InputError(f"sindiffusion: {key} must be >= 1, got {self.params[key]}")
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
        self.clip = data_clip_range(x)
        B, T = int(p["batch_size"]), self.schedule.T
        x0 = x[None].to(dev).expand(B, -1, -1, -1)

        def loss_fn(net, gen, step):
            t = torch.randint(T, (B,), generator=gen)
            noise = torch.randn(x0.shape, generator=gen).to(dev)
            eps = net(self.schedule.q_sample(x0, t, noise), t.to(dev))
            return (eps - noise).pow(2).mean()

        steps = self.steps(int(p["steps"]))
        spec = TrainSpec(loss_fn=loss_fn, steps=steps, lr=float(p["lr"]), seed=seed, ema_decay=float(p["ema_decay"]),
                         optimizer="adamw", fingerprint=self.fingerprint(x, seed, steps))
        self.net = train_loop(self.net, spec, self.runtime, ckpt_dir, desc="sindiffusion").model

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
