"""SinDDM (Kulikov et al. 2023): a multi-scale DDPM with one small fully-convolutional net.

Pyramid (coarsest first, factor ~1.411, coarsest short side clamp(round(sqrt(3110 * short/long)),
42, 55): 55/73/96 at 96 px). One net eps(x_t, t, s) for all scales, trained with an L1 loss on eps
(cosine schedule, T = 100). At scales s > 0 the clean input is a mix of the real level x^s and
its blurry version x~^s (level s-1 upsampled):

    x_0^mix = gamma_t x~^s + (1 - gamma_t) x^s,   gamma_t = clamp(sigma_t / (lf * L_s), 0, 1)

with sigma_t = sqrt((1 - abar_t) / abar_t) and L_s the per-scale reconstruction loss. Sampling:
full DDPM at s = 0; at s > 0 the upsampled previous output is noised and denoised for
T[s] = first t with sigma_t > lf * L_s steps with "reblurring": the predicted x_0 is deblurred
(gamma clamped to 0.55), re-mixed with the blurry image at t-1, and the step is the deterministic
(zero posterior variance) one of the official code.

The scale loss L_s (``scale_loss``):

* ``official`` (default), as fallenshock/SinDDM ``SinDDM/functions.py`` ``create_img_scales``
  computes it and ``SinDDM/models.py`` ``MultiScaleGaussianDiffusion.__init__`` uses it: on 8-bit
  images, level s = the image resized with PIL LANCZOS, x~^s = level s-1 resized with PIL BILINEAR,

      L_s = || uint8(x^s) - uint8(x~^s) ||_2 / (C h_s w_s)

  with the difference taken in uint8 (negative values wrap to 256 - d), and the model trained on
  the raw intensities mapped [0, 1] -> [-1, 1] (``SinDDM/trainer.py`` ``Dataset``) with x_0 clipped to
  [-1, 1]. L_s is thus in 8-bit units over the pixel count, compared with sigma_t in [-1, 1] units
  (units that do not match: that is the rule the paper's numbers come from). The framework reads
  a grey image as one channel, so C = 1 for a grey PNG saved as RGB (the official code reads such
  a file as RGB, C = 3, which divides L_s by sqrt(3)). At 96 px (tests/test_sinddm.py): the
  embedded simulator line-pair image L = [1.49, 0.79], T[s] = [62, 41]; the paper's line-pair
  image L = [1.45, 0.82], T[s] = [61, 43] ([0.84, 0.47], [43, 27] read as RGB).
* ``standardised`` (this project's earlier rule, kept as an option): L_s = RMS(x^s - x~^s) in float,
  on the framework's pyramid, in the per-channel standardised units the model is then trained in
  (x_0 clipped to the image's range widened by 10 %). L_s is then in the units of sigma_t, so T[s] is
  where the noise just hides the detail the coarser scale lacks; on both images it gives
  L = [0.054, 0.064], T[s] = [2, 3]: the finer scales are trained to return the blurry input most of
  the time and are sampled for 2-3 steps only.

Where the upsampled image is noised (sampler setting ``noise_at``): ``official`` (default), as
``SinDDM/models.py`` ``p_sample_via_scale_loop``: q_sample to step T[s], then denoised from step
T[s] - 1 down to 0 (one step more noise than the first denoising step assumes); ``matched``: noised
to step T[s] - 1, the step the denoising starts from (this project's earlier sampler). Both take
T[s] net evaluations.

Deviations from the official code that remain: the training levels come from the framework's
pyramid (antialiased bilinear resizing, float) rather than PIL LANCZOS 8-bit PNGs; T[s] is at
least 1 (official: 0 steps when L_s is below sigma_0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from sinsemi.data.pyramid import build_pyramid, pyramid_sizes, resize
from sinsemi.errors import InputError
from sinsemi.generators.common.diffusion import (DiffusionGenerator, Schedule, TrainSpec, ancestral_step,
                                                 data_clip_range, train_loop, unit_range_standardizer)
from sinsemi.nets.sinddm import SinDDMNet
from sinsemi.seeding import randn_per_sample

GAMMA_SAMPLE_MAX = 0.55  # the official sampler clamps gamma to 0.55 when deblurring
SCALE_LOSSES = ("official", "standardised")  # see the module docstring


def official_scale_losses(image: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """L_s for s = 1..S-1 (S-1,), float64, by the rule of fallenshock/SinDDM ``SinDDM/functions.py``
    ``create_img_scales``: ``image`` (C, H, W) in [0, 1] is quantised to 8 bits; level s = the image
    resized to ``sizes[s]`` with PIL LANCZOS; x~^s = level s-1 resized with PIL BILINEAR;
    L_s = ||x^s - x~^s||_2 / (C h_s w_s), the difference taken in uint8 (wrapping modulo 256).
    Each channel is resized on its own (PIL resizes the bands of an RGB image independently)."""
    import numpy as np
    from PIL import Image

    from sinsemi.data.io import to_uint8

    u8 = to_uint8(image)
    u8 = u8[None] if u8.ndim == 2 else np.moveaxis(u8, -1, 0)  # (C, H, W)
    bands = [Image.fromarray(np.ascontiguousarray(band)) for band in u8]
    levels = [[b.resize((w, h), Image.LANCZOS) for b in bands] for h, w in sizes]
    losses = []
    for s in range(1, len(sizes)):
        h, w = sizes[s]
        sq = 0.0
        for real, prev in zip(levels[s], levels[s - 1]):
            diff = np.asarray(real) - np.asarray(prev.resize((w, h), Image.BILINEAR))  # uint8: wraps
            sq += float((diff.astype(np.float64) ** 2).sum())
        losses.append(sq ** 0.5 / (len(bands) * h * w))
    return torch.tensor(losses, dtype=torch.float64)


class SinDDM(DiffusionGenerator):
    name = "sinddm"

    def __init__(self, runtime=None, *, width: int = 160, timesteps: int = 100, scale_factor: float = 1.411,
                 coarse_area: float = 3110.0, min_coarse: int = 42, max_coarse: int = 55,
                 steps: int = 120_000, batch_size: int = 32, lr: float = 1e-3,
                 lr_milestones: tuple = (20 / 120, 40 / 120, 70 / 120, 80 / 120, 90 / 120, 110 / 120),
                 lr_gamma: float = 0.5, ema_decay: float = 0.995, ema_every: int = 10, ema_start: float = 2 / 120,
                 loss_factor: float = 1.0, scale_loss: str = "official"):
        super().__init__(runtime, width=width, timesteps=timesteps, scale_factor=scale_factor, coarse_area=coarse_area,
                         min_coarse=min_coarse, max_coarse=max_coarse, steps=steps, batch_size=batch_size, lr=lr,
                         lr_milestones=list(lr_milestones), lr_gamma=lr_gamma, ema_decay=ema_decay,
                         ema_every=ema_every, ema_start=ema_start, loss_factor=loss_factor, scale_loss=scale_loss)
        if scale_loss not in SCALE_LOSSES:
            raise InputError(f"sinddm: scale_loss must be one of {SCALE_LOSSES}, got {scale_loss!r}")
        for key in ("width", "timesteps", "steps", "batch_size", "ema_every"):
            if int(self.params[key]) < 1:
                raise InputError(f"sinddm: {key} must be >= 1, got {self.params[key]}")
        if not all(0 <= float(m) <= 1 for m in [*lr_milestones, ema_start]):
            raise InputError("sinddm: lr_milestones and ema_start are fractions of the training budget (in [0, 1])")
        self.schedule = Schedule.make("cosine", int(timesteps))
        self.sizes: list[tuple[int, int]] = []
        self.scale_losses = torch.zeros(0)
        self.clip = (-10.0, 10.0)

    # ------------------------------------------------------------------ structure
    def _sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        p = self.params
        try:
            sizes = pyramid_sizes(h, w, float(p["scale_factor"]), area=float(p["coarse_area"]),
                                  min_coarse=int(p["min_coarse"]), max_coarse=int(p["max_coarse"]))
        except InputError as e:
            raise InputError(f"sinddm: {e} (SinDDM's pyramid rule; lower min_coarse/coarse_area for small images)") from None
        if len(sizes) < 2:
            raise InputError(f"sinddm: image {h}x{w} gives a single pyramid level (coarsest {sizes[0]}); "
                             "SinDDM needs at least two scales")
        return sizes

    def build(self, channels: int, image_size: tuple[int, int]) -> None:
        self.sizes = self._sizes(*image_size)
        self.net = SinDDMNet(channels, int(self.params["width"]), time_scale=1.0, multiscale=True)

    def _standardizer(self, image: torch.Tensor):
        """Official: the fixed map [0, 1] -> [-1, 1] (x -> (x - 0.5) / 0.5); standardised: per channel."""
        from sinsemi.generators.base import Standardizer

        if self.params["scale_loss"] == "official":
            return unit_range_standardizer(image.shape[0])
        return Standardizer.fit(image)

    def gammas(self, s: int) -> torch.Tensor:
        """gamma_t for scale s > 0 (T,), float64."""
        lf = float(self.params["loss_factor"])
        return (self.schedule.sigma_over_alpha / (lf * self.scale_losses[s - 1].double())).clamp(0, 1)

    def start_step(self, s: int) -> int:
        """T[s]: the first t with sigma_t > lf * L_s (the official num_timesteps_ideal), at least 1."""
        above = self.schedule.sigma_over_alpha > float(self.params["loss_factor"]) * self.scale_losses[s - 1].double()
        return max(1, int(torch.argmax(above.to(torch.uint8))) if bool(above.any()) else self.schedule.T)

    # ------------------------------------------------------------------ training
    def _fit(self, x: torch.Tensor, seed: int, ckpt_dir: Path) -> None:
        pyr = build_pyramid(x, self.sizes)
        if self.params["scale_loss"] == "official":  # 8-bit rule on the raw image; x_0 in [-1, 1]
            self.scale_losses = official_scale_losses(self.std.inverse(x), self.sizes).float()
            self.clip = (-1.0, 1.0)
        else:  # float RMS in the standardised units
            self.scale_losses = torch.stack([(pyr.levels[s] - pyr.conditions[s]).pow(2).mean().sqrt()
                                             for s in range(1, pyr.n_scales)]).float()
            self.clip = data_clip_range(x)
        p, dev = self.params, self.runtime.device
        steps = self.steps(int(p["steps"]))
        # milestones and the EMA start are fractions of the budget (official: 20k, 40k, ... and 2k of 120k)
        milestones = [max(1, round(float(m) * steps)) for m in p["lr_milestones"]]
        B, T, S = int(p["batch_size"]), self.schedule.T, pyr.n_scales
        levels = [lv[None].to(dev) for lv in pyr.levels]
        blurs = [None] + [c[None].to(dev) for c in pyr.conditions[1:]]
        gammas = [None] + [self.gammas(s).float() for s in range(1, S)]

        def loss_fn(net, gen, step):
            s = int(torch.randint(S, (1,), generator=gen))  # scales uniformly (train_full_t)
            t = torch.randint(T, (B,), generator=gen)
            noise = torch.randn((B, *levels[s].shape[1:]), generator=gen).to(dev)
            x0 = levels[s].expand(B, -1, -1, -1)
            if s > 0:
                g = gammas[s][t].to(dev).view(-1, 1, 1, 1)
                x0 = g * blurs[s] + (1 - g) * x0
            eps = net(self.schedule.q_sample(x0, t, noise), t.to(dev), torch.full((B,), s, device=dev))
            return (eps - noise).abs().mean()

        spec = TrainSpec(loss_fn=loss_fn, steps=steps, lr=float(p["lr"]), seed=seed, ema_decay=float(p["ema_decay"]),
                         ema_every=int(p["ema_every"]), ema_start=round(float(p["ema_start"]) * steps),
                         lr_milestones=milestones, lr_gamma=float(p["lr_gamma"]),
                         fingerprint=self.fingerprint(x, seed, steps))
        self.net = train_loop(self.net, spec, self.runtime, ckpt_dir, desc="sinddm",
                              on_snapshot=self.snapshot_writer(ckpt_dir)).model

    # ------------------------------------------------------------------ sampling
    def _eps(self, x, t: int, s: int):
        n = x.shape[0]
        dev = self.runtime.device
        return self.net(x.to(dev), torch.full((n,), t, device=dev), torch.full((n,), s, device=dev)).float().cpu()

    def _sample_batch(self, gens, *, start_steps: list[int] | None = None, noise_at: str = "official",
                      **unknown) -> tuple[torch.Tensor, int]:
        """``start_steps``: T[s] per finer scale (None: from the scale losses); ``noise_at``: where the
        upsampled image is noised (official: step T[s]; matched: step T[s] - 1; module docstring)."""
        if unknown:
            raise InputError(f"sinddm: unknown sampler setting(s) {sorted(unknown)} (known: start_steps, noise_at)")
        if noise_at not in ("official", "matched"):
            raise InputError(f"sinddm: noise_at must be 'official' or 'matched', got {noise_at!r}")
        sch, lo, hi = self.schedule, *self.clip
        ac = sch.alphas_cumprod
        c = self.channels
        # scale 0: plain DDPM ancestral sampling from pure noise
        x = randn_per_sample(gens, (c, *self.sizes[0]))
        nfe = sch.T
        for t in reversed(range(sch.T)):
            tt = torch.full((x.shape[0],), t, dtype=torch.long)
            x0 = sch.x0_from_eps(x, tt, self._eps(x, t, 0)).clamp(lo, hi)
            x = ancestral_step(sch, x0, x, t, randn_per_sample(gens, x.shape[1:]) if t > 0 else None)
        for s in range(1, len(self.sizes)):
            blur = resize(x, self.sizes[s], mode="bilinear")
            t0 = self.start_step(s) if start_steps is None else int(start_steps[s - 1])
            if not 1 <= t0 <= sch.T:
                raise InputError(f"sinddm: start step for scale {s} must be in 1..{sch.T}, got {t0}")
            g = self.gammas(s).clamp(0, GAMMA_SAMPLE_MAX)
            t_noise = min(t0, sch.T - 1) if noise_at == "official" else t0 - 1
            x = sch.q_sample(blur, torch.full((x.shape[0],), t_noise), randn_per_sample(gens, blur.shape[1:]))
            nfe += t0
            for t in reversed(range(t0)):
                tt = torch.full((x.shape[0],), t, dtype=torch.long)
                x0_t = sch.x0_from_eps(x, tt, self._eps(x, t, s))  # the mixed x_0 at t
                x0 = (x0_t - float(g[t]) * blur) / (1 - float(g[t]))  # deblurred
                if t == 0:
                    x = x0.clamp(lo, hi)
                    break
                x0_prev = (float(g[t - 1]) * blur + (1 - float(g[t - 1])) * x0).clamp(lo, hi)  # reblurred at t-1
                eps_dir = (x - ac[t].sqrt().float() * x0_t.clamp(lo, hi)) / (1 - ac[t]).sqrt().float()
                x = ac[t - 1].sqrt().float() * x0_prev + (1 - ac[t - 1]).sqrt().float() * eps_dir
        return x, nfe

    # ------------------------------------------------------------------ save / load
    def _extra_state(self) -> dict:
        return {"scale_losses": self.scale_losses.clone(), "clip": torch.tensor(self.clip)}

    def _load_extra(self, state: Mapping[str, Any]) -> None:
        self.scale_losses = state["scale_losses"].float()
        self.clip = tuple(float(v) for v in state["clip"].tolist())
