"""SinGAN (Rott Shaham, Dekel & Michaeli, ICCV 2019), reimplemented for C-channel images.

One generator/critic pair per scale n = 0 (coarsest) .. N, trained coarse to fine with the coarser
ones frozen. With x~_n the image at scale n and up(.) bicubic upsampling (sec. 3.1):

    x~_0 = G_0(z_0),                x~_n = G_n(sigma_n z_n + up(x~_{n-1})) + up(x~_{n-1}),

G_n/D_n: 5 conv layers 3x3 (BN, LeakyReLU 0.2, no padding; the input is zero-padded by 5), width
nfc_n = min(32 * 2^floor(n/4), 128). Loss (eq. 1-3): WGAN-GP (lambda 0.1) + alpha * ||G(z*) - x||^2
(alpha 10) with the reconstruction noise z* at n = 0 (zero at finer scales); sigma_n = 0.1 *
RMSE(x_n, up(rec_{n-1})), sigma_0 = 1. Pyramid: factor 0.75 refitted so the coarsest level is
exactly min_size (25) px.

z* at n = 0 (``z_star``):

* ``redraw`` (default, the official behaviour: tamarott/SinGAN ``SinGAN/training.py``
  ``train_single_scale`` draws a new ``z_opt`` at the start of every epoch while ``Gs == []``, and
  keeps the last one as Zs[0] for the finer scales' reconstructions and sigma_n). The coarsest
  reconstruction term then asks G_0 to map *any* noise to the real coarse image, which pins the
  coarse layout of the samples (a known quirk of that code, discussed in its issues);
* ``fixed`` (the paper's text, sec. 3.2: "a specific set of input noise maps ... z* fixed during
  training"): z* drawn once before training, which leaves the coarse layout free.

Differences from tamarott/SinGAN, on purpose:
* the generator steps recompute ``fake`` after every G update (the official loop reuses the graph
  of the pre-update G, an in-place autograd error on torch >= 1.5);
* native C channels (noise has C channels, the coarsest noise one channel broadcast to C as in the
  official code); upsampling goes straight to the next level's size;
* the learning-rate drop is at ``lr_milestone * niter`` (0.8 * 2000 = 1600, the official value);
* ``intensity: minmax`` (default): the image's own range [min, max] is mapped to [-1, 1] (the
  line-pair images span only ~0.21-0.31) and samples are mapped back, clamped to that range;
  ``intensity: raw`` restores the official [0, 1] -> [-1, 1] (``SinGAN/functions.py`` ``norm``).

Training runs in float32 whatever ``runtime.precision`` says (the WGAN-GP double backward and these
small convolutions gain nothing from bf16 on CPU); ``runtime.device`` is honoured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, SampleOutput, check_seeds, read_model, write_model
from sinsemi.generators.common.gan import (CheckpointStore, check_gan_image, check_positive_params,
                                           conv_block, critic_step, derive_seed, fingerprint, freeze, init_weights,
                                           lr_factor, make_generator, no_param_grads, noise_amplitude, pair_state, restore_pair,
                                           pyramid_size, range_normalizer, run_iterations,
                                           seeded, set_lr, upsample)
from sinsemi.generators.common.patches import RangeMap
from sinsemi.seeding import generators_for

NAME = "singan"
Z_STAR = ("redraw", "fixed")  # the coarsest reconstruction noise: official per-epoch redraw | drawn once


# ----------------------------------------------------------------------------- pyramid, widths
def singan_sizes(height: int, width: int, scale_factor: float = 0.75, min_size: int = 25) -> list[tuple[int, int]]:
    """Level sizes, coarsest first (official ``adjust_scales2image`` + ``creat_reals_pyramid``).

    N = ceil(log(min_size / short) / log(scale_factor)) + 1 is the finest index; the factor is
    refitted to r = (min_size / short)^(1/N) and level n has size ceil(r^(N-n) * (H, W)).
    96 x 96 -> 25, 32, 40, 49, 62, 77, 96.
    """
    short = min(height, width)
    if short < min_size:
        raise InputError(f"SinGAN: image {height}x{width} is smaller than its coarsest level min_size={min_size}")
    if not 0 < scale_factor < 1:
        raise InputError(f"SinGAN: scale_factor must be in (0, 1), got {scale_factor}")
    stop = math.ceil(math.log(min_size / short) / math.log(scale_factor) - 1e-9) + 1
    r = (min_size / short) ** (1.0 / stop)
    sizes = [pyramid_size(height, width, r ** (stop - n)) for n in range(stop)]
    return sizes + [(height, width)]


def singan_widths(n_scales: int, nfc_init: int = 32, nfc_max: int = 128) -> list[int]:
    """nfc_n = min(nfc_init * 2^floor(n / 4), nfc_max): 32, 32, 32, 32, 64, 64, 64 for 7 scales."""
    return [min(nfc_init * 2 ** (n // 4), nfc_max) for n in range(n_scales)]


# ----------------------------------------------------------------------------- networks
class ScaleGenerator(nn.Module):
    """G_n: ``num_layer`` 3x3 convs without padding (head, body: conv-BN-LReLU; tail: conv-tanh),
    plus the residual ``prev``. In: (N, C, h + 2p, w + 2p) padded input and padded prev,
    p = num_layer; out: (N, C, h, w)."""

    def __init__(self, channels: int, nfc: int, num_layer: int = 5, negative_slope: float = 0.2):
        super().__init__()
        blocks = [conv_block(channels, nfc, negative_slope=negative_slope, batch_norm=True)]
        blocks += [conv_block(nfc, nfc, negative_slope=negative_slope, batch_norm=True) for _ in range(num_layer - 2)]
        self.body = nn.Sequential(*blocks, nn.Conv2d(nfc, channels, kernel_size=3), nn.Tanh())

    def forward(self, z_in: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        x = self.body(z_in)
        c = (prev.shape[-1] - x.shape[-1]) // 2
        r = (prev.shape[-2] - x.shape[-2]) // 2
        return x + prev[..., r:prev.shape[-2] - r, c:prev.shape[-1] - c]


class ScaleCritic(nn.Module):
    """D_n: ``num_layer - 1`` conv-BN-LReLU blocks and a 3x3 conv to one channel (a patch critic,
    receptive field 11 px). In (N, C, h, w); out (N, 1, h - 2 num_layer, w - 2 num_layer)."""

    def __init__(self, channels: int, nfc: int, num_layer: int = 5, negative_slope: float = 0.2):
        super().__init__()
        blocks = [conv_block(channels, nfc, negative_slope=negative_slope, batch_norm=True)]
        blocks += [conv_block(nfc, nfc, negative_slope=negative_slope, batch_norm=True) for _ in range(num_layer - 2)]
        self.body = nn.Sequential(*blocks, nn.Conv2d(nfc, 1, kernel_size=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ----------------------------------------------------------------------------- the generator
class SinGAN:
    """SinGAN behind the :class:`~sinsemi.generators.base.OneShotGenerator` interface.

    ``runtime.max_steps`` (``trainer.max_steps``) replaces ``niter``: iterations per scale, each of
    ``d_steps`` critic and ``g_steps`` generator updates.
    """

    name = NAME
    resumes_from_file = True  # its checkpoints/last.pt format (CheckpointStore)

    def __init__(self, *, runtime: Runtime | None = None, scale_factor: float = 0.75, min_size: int = 25,
                 nfc_init: int = 32, nfc_max: int = 128, num_layer: int = 5, niter: int = 2000,
                 lr_g: float = 5e-4, lr_d: float = 5e-4, beta1: float = 0.5, lr_milestone: float = 0.8,
                 gamma: float = 0.1, d_steps: int = 3, g_steps: int = 3, lambda_grad: float = 0.1,
                 alpha: float = 10.0, noise_amp_init: float = 0.1, negative_slope: float = 0.2,
                 z_star: str = "redraw", intensity: str = "minmax"):
        check_positive_params(NAME, scale_factor=scale_factor, min_size=min_size, nfc_init=nfc_init, nfc_max=nfc_max,
                              num_layer=num_layer, niter=niter, lr_g=lr_g, lr_d=lr_d, gamma=gamma, d_steps=d_steps,
                              g_steps=g_steps, noise_amp_init=noise_amp_init)
        if num_layer < 2:
            raise InputError(f"{NAME}: num_layer must be >= 2, got {num_layer}")
        if not 0 < scale_factor < 1:
            raise InputError(f"{NAME}: scale_factor must be in (0, 1), got {scale_factor}")
        if z_star not in Z_STAR:
            raise InputError(f"{NAME}: z_star must be one of {Z_STAR}, got {z_star!r}")
        if intensity not in ("minmax", "raw"):
            raise InputError(f"{NAME}: intensity must be 'minmax' or 'raw', got {intensity!r}")
        self.runtime = runtime or Runtime()
        self.params: dict[str, Any] = dict(
            scale_factor=float(scale_factor), min_size=int(min_size), nfc_init=int(nfc_init), nfc_max=int(nfc_max),
            num_layer=int(num_layer), niter=int(niter), lr_g=float(lr_g), lr_d=float(lr_d), beta1=float(beta1),
            lr_milestone=float(lr_milestone), gamma=float(gamma), d_steps=int(d_steps), g_steps=int(g_steps),
            lambda_grad=float(lambda_grad), alpha=float(alpha), noise_amp_init=float(noise_amp_init),
            negative_slope=float(negative_slope), z_star=str(z_star), intensity=str(intensity))
        self.p = dict(self.params)
        self.device = torch.device(self.runtime.device)
        self.pad = int(num_layer)  # (3 - 1) * num_layer / 2
        self.sizes: list[tuple[int, int]] = []
        self.channels = 0
        self.generators: list[ScaleGenerator] = []
        self.noise_amps: list[float] = []
        self.z_opt: torch.Tensor | None = None  # (1, C, h_0, w_0): the fixed reconstruction noise z*
        self.norm: RangeMap | None = None

    # ------------------------------------------------------------------ building blocks
    def _new_pair(self, scale: int, seed: int) -> tuple[ScaleGenerator, ScaleCritic]:
        nfc = singan_widths(scale + 1, self.p["nfc_init"], self.p["nfc_max"])[scale]
        with seeded(derive_seed(seed, NAME, "init", scale)):
            g = ScaleGenerator(self.channels, nfc, self.p["num_layer"], self.p["negative_slope"])
            d = ScaleCritic(self.channels, nfc, self.p["num_layer"], self.p["negative_slope"])
            init_weights(g)
            init_weights(d)
        return g.to(self.device), d.to(self.device)

    def _noise(self, scale: int, gen: torch.Generator) -> torch.Tensor:
        """z_n ~ N(0, 1) of shape (1, C, h_n, w_n); at n = 0 one channel broadcast to C (official)."""
        h, w = self.sizes[scale]
        if scale == 0:
            return torch.randn(1, 1, h, w, generator=gen, device=self.device).expand(1, self.channels, h, w)
        return torch.randn(1, self.channels, h, w, generator=gen, device=self.device)

    def _apply(self, scale: int, g: ScaleGenerator, z: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """x~_n = G_n(pad(sigma_n z + prev), pad(prev))."""
        p = self.pad
        return g(F.pad(self.noise_amps[scale] * z + prev, (p, p, p, p)), F.pad(prev, (p, p, p, p)))

    def _chain(self, upto: int, z_of) -> torch.Tensor:
        """up(x~_{upto-1}) at level ``upto``'s size, through the frozen G_0..G_{upto-1}; zeros when
        upto = 0. ``z_of(n)`` gives z_n."""
        x = torch.zeros(1, self.channels, *self.sizes[0], device=self.device)
        for n in range(upto):
            x = self._apply(n, self.generators[n], z_of(n), upsample(x, self.sizes[n]))
        return upsample(x, self.sizes[upto])

    def _z_rec(self, n: int) -> torch.Tensor:
        h, w = self.sizes[n]
        return self.z_opt if n == 0 else torch.zeros(1, self.channels, h, w, device=self.device)

    def _z_star(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """z* for one training iteration at scale n: with ``z_star=redraw`` at n = 0 a new draw from
        ``gen``, kept as ``self.z_opt`` (official: the last epoch's z_opt is the one kept); else the
        fixed z* (zero at n > 0)."""
        if n == 0 and self.p["z_star"] == "redraw":
            self.z_opt = self._noise(0, gen).contiguous()
        return self._z_rec(n)

    # ------------------------------------------------------------------ fit
    def fit(self, image: torch.Tensor, *, seed: int, out_dir: str | Path) -> None:
        """Train G_0..G_N coarse to fine on ``image`` (C, H, W). Checkpoints: ``out_dir/checkpoints``."""
        image = check_gan_image(image, generator="SinGAN", min_size=self.p["min_size"])
        rt = self.runtime
        niter = int(rt.max_steps) if rt.max_steps is not None else self.p["niter"]
        self.channels = int(image.shape[0])
        self.sizes = singan_sizes(image.shape[-2], image.shape[-1], self.p["scale_factor"], self.p["min_size"])
        self.norm = range_normalizer(image, self.p["intensity"])
        from sinsemi.data.pyramid import resize

        x = self.norm.forward(image.float()).to(self.device)
        reals = [resize(x, size, mode="bicubic")[None] for size in self.sizes]
        self.generators, self.noise_amps = [], []
        with seeded(derive_seed(seed, NAME, "z_opt")):
            self.z_opt = torch.randn(1, 1, *self.sizes[0]).expand(1, self.channels, *self.sizes[0]).contiguous().to(self.device)

        store = CheckpointStore(out_dir, NAME, rt)
        fp = fingerprint(self.params, seed, niter, image)
        ckpt = store.load(fp)
        start_scale, partial = 0, None
        if ckpt is not None:
            for n, gs in enumerate(ckpt["generators"]):
                g, _ = self._new_pair(n, seed)
                g.load_state_dict(gs)
                self.generators.append(freeze(g))
            self.noise_amps = [float(a) for a in ckpt["noise_amps"]]
            self.z_opt = ckpt["z_opt"].to(self.device)
            start_scale, partial = len(self.generators), ckpt.get("partial")
        prev_pair: dict | None = ckpt.get("last_pair") if ckpt is not None else None

        for n in range(start_scale, len(self.sizes)):
            prev_pair = self._fit_scale(n, reals, seed, niter, store, fp, prev_pair, partial)
            partial = None
        self.generators = [freeze(g) for g in self.generators]

    def _fit_scale(self, n: int, reals: list[torch.Tensor], seed: int, niter: int, store: CheckpointStore,
                   fp: dict, prev_pair: dict | None, partial: dict | None) -> dict:
        p, real = self.p, reals[n]
        g, d = self._new_pair(n, seed)
        widths = singan_widths(n + 1, p["nfc_init"], p["nfc_max"])
        if n > 0 and prev_pair is not None and widths[n] == widths[n - 1]:
            # official: a scale as wide as the previous one starts from its trained weights
            g.load_state_dict(prev_pair["G"])
            d.load_state_dict(prev_pair["D"])
        gen = make_generator(derive_seed(seed, NAME, "train", n), self.device)

        # sigma_n from the reconstruction of the coarser scales (sec. 3.1)
        with torch.no_grad():
            rec_prev = self._chain(n, self._z_rec)
        self.noise_amps.append(1.0 if n == 0 else noise_amplitude(real, rec_prev, p["noise_amp_init"]))

        opt_g = torch.optim.Adam(g.parameters(), lr=p["lr_g"], betas=(p["beta1"], 0.999))
        opt_d = torch.optim.Adam(d.parameters(), lr=p["lr_d"], betas=(p["beta1"], 0.999))
        start = restore_pair(partial, g, d, opt_g, opt_d, gen, self.device)
        g.train()
        d.train()

        def snapshot(done: int) -> None:
            store.save(self._ckpt_state(fp, prev_pair, partial=pair_state(done, g, d, opt_g, opt_d, gen)))

        def step(it: int) -> dict[str, float]:
            f = lr_factor(it, niter, p["lr_milestone"], p["gamma"])
            set_lr(opt_g, [p["lr_g"]], f)
            set_lr(opt_d, [p["lr_d"]], f)
            z_rec = self._z_star(n, gen)  # official order: z_opt, then the noise of the fake
            z = self._noise(n, gen)
            for _ in range(p["d_steps"]):
                with torch.no_grad():  # a fresh sample of the frozen coarser scales per critic step
                    prev = self._chain(n, lambda k: self._noise(k, gen))
                    fake = self._apply(n, g, z, prev)
                losses = critic_step(d, opt_d, real, fake, p["lambda_grad"], generator=gen)
            for _ in range(p["g_steps"]):
                opt_g.zero_grad(set_to_none=True)
                fake = self._apply(n, g, z, prev)  # recomputed after each update (the official bug)
                with no_param_grads(d):
                    err_g = -d(fake).mean()
                rec = p["alpha"] * F.mse_loss(self._apply(n, g, z_rec, rec_prev), real) if p["alpha"] > 0 else torch.zeros(())
                (err_g + rec).backward()
                opt_g.step()
            return {**losses, "errG": err_g.item(), "rec": float(rec.detach()), "noise_amp": self.noise_amps[n]}

        try:
            run_iterations(runtime=self.runtime, name=NAME, scale=n, n_scales=len(self.sizes), start=start, niter=niter,
                           global_offset=n * niter, step=step, snapshot=snapshot)
        except BaseException:
            self.noise_amps.pop()
            raise
        self.generators.append(freeze(g))
        pair = {"G": g.state_dict(), "D": d.state_dict()}
        store.save(self._ckpt_state(fp, pair, partial=None))
        return pair

    def _ckpt_state(self, fp: dict, last_pair: dict | None, partial: dict | None) -> dict:
        n_done = len(self.generators)
        return {"fingerprint": fp, "generators": [g.state_dict() for g in self.generators],
                "noise_amps": list(self.noise_amps[:n_done]), "z_opt": self.z_opt.cpu(),
                "last_pair": last_pair, "partial": partial}

    # ------------------------------------------------------------------ sample
    @torch.no_grad()
    def sample(self, seeds: Sequence[int], **settings: Any) -> SampleOutput:
        """One sample per seed, ``samples`` (len(seeds), C, H, W) in the training image's intensity
        scale; sample i draws every z_k (k = 0..N) from its own generator seeded with ``seeds[i]``.
        No sampler settings. ``nfe``: one G_k per scale; ``clamped_pixels``: values outside [-1, 1]."""
        seeds = check_seeds(seeds)
        if settings:
            raise InputError(f"{NAME}: unknown sampler settings {sorted(settings)} (SinGAN takes none)")
        if not self.generators:
            raise InputError(f"{NAME}: not fitted: call fit() or load() before sample()")
        out = []
        for gen in generators_for(seeds, device=self.device):
            top = len(self.sizes) - 1
            prev = self._chain(top, lambda k: self._noise(k, gen))
            out.append(self._apply(top, self.generators[top], self._noise(top, gen), prev))
        samples, clamped = self.norm.inverse_counted(torch.cat(out))
        return SampleOutput(samples=samples.float().cpu(), nfe=len(self.sizes), clamped_pixels=clamped)

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> None:
        if not self.generators:
            raise InputError(f"{NAME}: nothing to save: fit() first")
        state = {"sizes": torch.tensor(self.sizes), "channels": self.channels,
                 "noise_amps": torch.tensor(self.noise_amps, dtype=torch.float64), "z_opt": self.z_opt.cpu(),
                 "norm": self.norm.state_dict(), "generators": [g.state_dict() for g in self.generators]}
        write_model(directory, NAME, self.params, state)

    @classmethod
    def load(cls, directory: str | Path, *, runtime: Runtime | None = None) -> "SinGAN":
        _, params, state = read_model(directory, expected=NAME)
        self = cls(runtime=runtime, **params)
        self.sizes = [tuple(int(v) for v in s) for s in state["sizes"].tolist()]
        self.channels = int(state["channels"])
        self.noise_amps = [float(a) for a in state["noise_amps"].tolist()]
        self.z_opt = state["z_opt"].to(self.device)
        self.norm = RangeMap.from_state(state["norm"])
        for k, gs in enumerate(state["generators"]):
            nfc = singan_widths(k + 1, self.p["nfc_init"], self.p["nfc_max"])[k]
            g = ScaleGenerator(self.channels, nfc, self.p["num_layer"], self.p["negative_slope"]).to(self.device)
            g.load_state_dict(gs)
            self.generators.append(freeze(g))
        return self
