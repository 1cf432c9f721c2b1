"""SinFusion (Nikankin et al. 2023): a single-image DDPM that predicts x_0, trained on crops.

NextNet backbone (:class:`sinsemi.nets.nextnet.NextNet`: 16 ConvNeXt-style blocks, 64 filters,
no downsampling), cosine schedule with T = 50, loss ||x_0 - f(x_t, t)||^2 on one random crop of
``crop_frac`` (95 %) of the image per step (batch 1), Adam lr 2e-4, no EMA (as the official
Lightning module). Sampling: ancestral DDPM at the full image size (the net is fully
convolutional) with the posterior variance beta~_t, x_0 clipped to the data range.

Checked against yanivnik/sinfusion-code: ``main.py`` ``train_image_diffusion`` (50k steps, batch 1,
crop int(0.95 min(H, W)), NextNet depth 16 / 64 filters from ``config.py``, x_0 target),
``diffusion/diffusion.py`` ``Diffusion`` (cosine betas by default, Adam 2e-4; its MultiStepLR at
epoch 20 of 5000-step epochs (``datasets/cropset.py`` ``CropSet``) never fires within 50k steps),
``diffusion/diffusion_utils.py`` (the linear and cosine betas). Sampling schedule (sampler setting
``schedule``): the official sampling script ``sample.py`` ``generate_diverse_samples`` reloads the
trained net with ``noise_schedule='linear'`` although it was trained with the cosine schedule, so the
released samples come from a linear-schedule reverse process run with a cosine-trained x_0
predictor. We follow it (``schedule: linear``, default): the comparison should score the samples
the authors' code produces; ``schedule: cosine`` samples with the training schedule (what the
paper's text implies, and the training module's own ``auto_sample``).

Deviations on purpose: the crop is ``crop_frac`` of each side (official: a square of 0.95 of the
short side; the same for square images); ``intensity: standardised`` (default) trains on the
per-channel standardised image and clips x_0 to its range widened by 10 %, while ``intensity: raw``
restores the official [0, 1] -> [-1, 1] (``CropSet``: ``img * 2 - 1``) with x_0 clipped to [-1, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from sinsemi.errors import InputError
from sinsemi.generators.common.diffusion import DiffusionGenerator, Schedule, TrainSpec, ancestral_step, train_loop
from sinsemi.nets.nextnet import NextNet
from sinsemi.seeding import randn_per_sample


class SinFusion(DiffusionGenerator):
    name = "sinfusion"

    def __init__(self, runtime=None, *, filters: int = 64, depth: int = 16, timesteps: int = 50,
                 schedule: str = "cosine", crop_frac: float = 0.95, steps: int = 50_000, batch_size: int = 1,
                 lr: float = 2e-4, min_size: int = 8, intensity: str = "standardised"):
        super().__init__(runtime, filters=filters, depth=depth, timesteps=timesteps, schedule=schedule,
                         crop_frac=crop_frac, steps=steps, batch_size=batch_size, lr=lr, min_size=min_size,
                         intensity=intensity)
        for key in ("filters", "depth", "timesteps", "steps", "batch_size"):
            if int(self.params[key]) < 1:
                raise InputError(f"sinfusion: {key} must be >= 1, got {self.params[key]}")
        if intensity not in ("standardised", "raw"):
            raise InputError(f"sinfusion: intensity must be 'standardised' or 'raw', got {intensity!r}")
        if not 0.0 < float(crop_frac) <= 1.0:
            raise InputError(f"sinfusion: crop_frac must be in (0, 1], got {crop_frac}")
        self.schedule = Schedule.make(schedule, int(timesteps))
        self.clip = (-10.0, 10.0)

    def build(self, channels: int, image_size: tuple[int, int]) -> None:
        p = self.params
        if min(image_size) < int(p["min_size"]):
            raise InputError(f"sinfusion: image {image_size[0]}x{image_size[1]} is too small "
                             f"(needs at least {p['min_size']} px per side for its crops)")
        try:
            self.net = NextNet(channels, int(p["filters"]), int(p["depth"]))
        except ValueError as e:
            raise InputError(f"sinfusion: {e}") from None

    def crop_size(self) -> tuple[int, int]:
        f = float(self.params["crop_frac"])
        return tuple(max(1, round(f * s)) for s in self.image_size)

    def _fit(self, x: torch.Tensor, seed: int, ckpt_dir: Path) -> None:
        p, dev = self.params, self.runtime.device
        self.clip = self._clip_range(x)
        B, T = int(p["batch_size"]), self.schedule.T
        (H, W), (h, w) = self.image_size, self.crop_size()
        img = x.to(dev)

        def loss_fn(net, gen, step):
            tops = torch.randint(H - h + 1, (B,), generator=gen).tolist()
            lefts = torch.randint(W - w + 1, (B,), generator=gen).tolist()
            x0 = torch.stack([img[:, i:i + h, j:j + w] for i, j in zip(tops, lefts)])
            t = torch.randint(T, (B,), generator=gen)
            noise = torch.randn(x0.shape, generator=gen).to(dev)
            pred = net(self.schedule.q_sample(x0, t, noise), t.to(dev))
            return (pred - x0).pow(2).mean()

        steps = self.steps(int(p["steps"]))
        spec = TrainSpec(loss_fn=loss_fn, steps=steps, lr=float(p["lr"]), seed=seed,
                         fingerprint=self.fingerprint(x, seed, steps))
        self.net = train_loop(self.net, spec, self.runtime, ckpt_dir, desc="sinfusion",
                              on_snapshot=self.snapshot_writer(ckpt_dir)).model

    def _sample_batch(self, gens, *, steps: int | None = None, schedule: str = "linear",
                      **unknown) -> tuple[torch.Tensor, int]:
        """``schedule``: the betas of the reverse process (linear: the official ``sample.py``; cosine:
        the training schedule); ``steps``: respaced to that many steps (None: all ``timesteps``)."""
        if unknown:
            raise InputError(f"sinfusion: unknown sampler setting(s) {sorted(unknown)} (known: steps, schedule)")
        sch = self.sampling_schedule(schedule).respace(None if steps is None else int(steps))
        lo, hi = self.clip
        dev = self.runtime.device
        x = randn_per_sample(gens, (self.channels, *self.image_size))
        for i in reversed(range(sch.T)):
            t_orig = sch.timesteps[torch.full((x.shape[0],), i, dtype=torch.long)].to(dev)
            x0 = self.net(x.to(dev), t_orig).float().cpu().clamp(lo, hi)
            x = ancestral_step(sch, x0, x, i, randn_per_sample(gens, x.shape[1:]) if i > 0 else None)
        return x, sch.T

    def sampling_schedule(self, kind: str) -> Schedule:
        """The reverse-process schedule: ``linear`` or ``cosine`` betas over ``timesteps`` steps."""
        if kind not in ("linear", "cosine"):
            raise InputError(f"sinfusion: sampler schedule must be 'linear' or 'cosine', got {kind!r}")
        return self.schedule if kind == self.params["schedule"] else Schedule.make(kind, int(self.params["timesteps"]))

    def _extra_state(self) -> dict:
        return {"clip": torch.tensor(self.clip)}

    def _load_extra(self, state: Mapping[str, Any]) -> None:
        self.clip = tuple(float(v) for v in state["clip"].tolist())
