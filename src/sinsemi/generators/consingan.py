"""ConSinGAN (Hinz, Fisher, Wang & Wermter, WACV 2021), reimplemented for C-channel images.

One generator grows by one stage per pyramid level; the last ``train_depth`` (3) stages train
concurrently, stage k levels below the newest at lr * lr_scale^k (lr_scale 0.1). With features
f_0 = body_0(pad(up(head(pad(z_0))))) and, for stage n >= 1 (sec. 3 of the paper),

    f_n = body_n(up'(f_{n-1}) + sigma_n z_n) + up(f_{n-1}),      x~ = tanh(tail(pad(f_N))),

where up / up' resize bicubically to level n's size / that size + 2 * num_layer and z_n has nfc
channels (the noise is added to features, not to the image). Each stage: num_layer (3) 3x3 convs
without padding, nfc 64, LeakyReLU 0.05, no normalisation (``batch_norm: true``: the official
``--batch_norm`` option, a BatchNorm after each convolution of the generator's head and stages, not
the critic's; the official code never calls ``eval()`` and generates one image per call, so each
image is normalised with its own statistics, in training and sampling alike). Loss: WGAN-GP (lambda 0.1) +
alpha * ||G(z*) - x_n||^2 (alpha 10), z*_0 = the real coarsest image, z*_n (n >= 1) a fixed noise;
sigma_n = 0.1 * RMSE(x_n, G(z*) with sigma_n = 0). Pyramid (the paper's rescaling, which packs
more stages at low resolution): level i < N has scale r^((N-1)/ln N * ln(N-i) + 1),
r = (min_size / short)^(1/N), N = train_stages - 1; 96 px -> 25, 30, 36, 47, 74, 96.

As in tohinz/ConSinGAN, each iteration makes ``d_steps`` critic updates and then applies
``g_steps`` Adam steps to one generator gradient. Differences: native C channels; the gradient
penalty does not reach the generator (the official code zeroes that gradient anyway); stages
below the trained ones and the head, once out of the trained window, are frozen explicitly;
``intensity: minmax`` (default) maps the image's own range [min, max] to [-1, 1] and back (the
line-pair images span only ~0.21-0.31); ``intensity: raw`` restores the official [0, 1] -> [-1, 1]
(``ConSinGAN/functions.py`` ``norm``). Checked against tohinz/ConSinGAN ``ConSinGAN/config.py``,
``main_train.py`` and ``ConSinGAN/training_generation.py`` ``train_single_scale``: z*_0 = the real
coarsest image (so no per-epoch redraw question as in SinGAN), noise drawn afresh every iteration,
sigma_n from the noise-free reconstruction, lr 0.1^k for the lower stages and the head, the lr drop
at 0.8 niter, the critic carried over between stages; no difference that changes the method.

Training runs in float32 whatever ``runtime.precision`` says (the WGAN-GP double backward and these
small convolutions gain nothing from bf16 on CPU); ``runtime.device`` is honoured.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from sinsemi.checks import check_bool
from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, SampleOutput, check_seeds, read_model, write_model
from sinsemi.generators.common.gan import (CheckpointStore, check_gan_image, check_positive_params,
                                           conv_block, critic_step, derive_seed, fingerprint, init_weights, lr_factor,
                                           make_generator, no_param_grads, noise_amplitude, pair_state, pyramid_size, range_normalizer,
                                           restore_pair, run_iterations, seeded, set_lr, upsample)
from sinsemi.generators.common.patches import RangeMap
from sinsemi.seeding import generators_for

NAME = "consingan"


def consingan_sizes(height: int, width: int, min_size: int = 25, train_stages: int = 6) -> list[tuple[int, int]]:
    """Level sizes, coarsest first (official ``adjust_scales2image`` + ``create_reals_pyramid``,
    generation mode): 96 x 96, min_size 25, 6 stages -> 25, 30, 36, 47, 74, 96."""
    short = min(height, width)
    if short < min_size:
        raise InputError(f"ConSinGAN: image {height}x{width} is smaller than its coarsest level min_size={min_size}")
    if train_stages < 2:
        raise InputError(f"ConSinGAN: train_stages must be >= 2, got {train_stages}")
    stop = train_stages - 1
    r = (min_size / short) ** (1.0 / stop)
    sizes = []
    for i in range(stop):
        e = (stop - 1) / math.log(stop) * math.log(stop - i) + 1 if stop > 1 else 1.0
        sizes.append(pyramid_size(height, width, r**e))
    return sizes + [(height, width)]


# ----------------------------------------------------------------------------- networks
def _stage(nfc: int, num_layer: int, slope: float, batch_norm: bool = False) -> nn.Sequential:
    return nn.Sequential(*[conv_block(nfc, nfc, negative_slope=slope, batch_norm=batch_norm, running_stats=False)
                           for _ in range(num_layer)])


class GrowingGenerator(nn.Module):
    """head -> body_0 .. body_{S-1} -> tail. ``forward(noise, sizes, amps)``: noise[0] (N, C, h_0,
    w_0), noise[n] (N, nfc, h_n + 2L, w_n + 2L) for n >= 1 (L = num_layer); out (N, C, h_{S-1},
    w_{S-1}) in [-1, 1]."""

    def __init__(self, channels: int, nfc: int = 64, num_layer: int = 3, negative_slope: float = 0.05, stages: int = 1,
                 batch_norm: bool = False):
        super().__init__()
        self.num_layer = num_layer
        self.head = conv_block(channels, nfc, negative_slope=negative_slope, batch_norm=batch_norm, running_stats=False)
        self.body = nn.ModuleList([_stage(nfc, num_layer, negative_slope, batch_norm)])
        self.tail = nn.Sequential(nn.Conv2d(nfc, channels, kernel_size=3), nn.Tanh())
        for _ in range(stages - 1):
            self.grow()

    def grow(self) -> None:
        """A new stage, initialised as a copy of the current top stage (official)."""
        self.body.append(copy.deepcopy(self.body[-1]))

    def forward(self, noise: Sequence[torch.Tensor], sizes: Sequence[tuple[int, int]], amps: Sequence[float]) -> torch.Tensor:
        L = self.num_layer
        x = self.head(F.pad(noise[0], (1, 1, 1, 1)))
        # the official upsampling by 2 px before the first stage (more diversity at the borders)
        x = upsample(x, (x.shape[-2] + 2, x.shape[-1] + 2), align_corners=True)
        f = self.body[0](F.pad(x, (L - 1,) * 4))
        for n in range(1, len(self.body)):
            h, w = sizes[n]
            skip = upsample(f, (h, w), align_corners=True)
            wide = upsample(f, (h + 2 * L, w + 2 * L), align_corners=True)
            f = self.body[n](wide + amps[n] * noise[n]) + skip
        return self.tail(F.pad(f, (1, 1, 1, 1)))


class Critic(nn.Module):
    """head + num_layer blocks + 3x3 conv to one channel; no padding, no normalisation.
    In (N, C, h, w); out (N, 1, h - 2(num_layer + 2), w - 2(num_layer + 2))."""

    def __init__(self, channels: int, nfc: int = 64, num_layer: int = 3, negative_slope: float = 0.05):
        super().__init__()
        self.body = nn.Sequential(conv_block(channels, nfc, negative_slope=negative_slope, batch_norm=False),
                                  *_stage(nfc, num_layer, negative_slope), nn.Conv2d(nfc, 1, kernel_size=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ----------------------------------------------------------------------------- the generator
class ConSinGAN:
    """ConSinGAN behind the :class:`~sinsemi.generators.base.OneShotGenerator` interface.

    ``runtime.max_steps`` (``trainer.max_steps``) replaces ``niter``: iterations per stage, each of
    ``d_steps`` critic updates and ``g_steps`` generator steps.
    """

    name = NAME
    resumes_from_file = True  # its checkpoints/last.pt format (CheckpointStore)

    def __init__(self, *, runtime: Runtime | None = None, train_stages: int = 6, train_depth: int = 3,
                 min_size: int = 25, nfc: int = 64, num_layer: int = 3, niter: int = 2000, lr_g: float = 5e-4,
                 lr_d: float = 5e-4, beta1: float = 0.5, lr_scale: float = 0.1, lr_milestone: float = 0.8,
                 gamma: float = 0.1, d_steps: int = 3, g_steps: int = 3, lambda_grad: float = 0.1,
                 alpha: float = 10.0, noise_amp_init: float = 0.1, negative_slope: float = 0.05,
                 batch_norm: bool = False, intensity: str = "minmax"):
        check_positive_params(NAME, train_stages=train_stages, train_depth=train_depth, min_size=min_size, nfc=nfc,
                              num_layer=num_layer, niter=niter, lr_g=lr_g, lr_d=lr_d, lr_scale=lr_scale, gamma=gamma,
                              d_steps=d_steps, g_steps=g_steps, noise_amp_init=noise_amp_init)
        if train_stages < 2:
            raise InputError(f"{NAME}: train_stages must be >= 2, got {train_stages}")
        if intensity not in ("minmax", "raw"):
            raise InputError(f"{NAME}: intensity must be 'minmax' or 'raw', got {intensity!r}")
        check_bool(f"{NAME}: batch_norm", batch_norm)
        self.runtime = runtime or Runtime()
        self.params: dict[str, Any] = dict(
            train_stages=int(train_stages), train_depth=int(train_depth), min_size=int(min_size), nfc=int(nfc),
            num_layer=int(num_layer), niter=int(niter), lr_g=float(lr_g), lr_d=float(lr_d), beta1=float(beta1),
            lr_scale=float(lr_scale), lr_milestone=float(lr_milestone), gamma=float(gamma), d_steps=int(d_steps),
            g_steps=int(g_steps), lambda_grad=float(lambda_grad), alpha=float(alpha),
            noise_amp_init=float(noise_amp_init), negative_slope=float(negative_slope), batch_norm=batch_norm,
            intensity=str(intensity))
        self.p = dict(self.params)
        self.device = torch.device(self.runtime.device)
        self.sizes: list[tuple[int, int]] = []
        self.channels = 0
        self.G: GrowingGenerator | None = None
        self.noise_amps: list[float] = []
        self.norm: RangeMap | None = None

    # ------------------------------------------------------------------ helpers
    def _new_generator(self, seed: int) -> GrowingGenerator:
        with seeded(derive_seed(seed, NAME, "init", "G")):
            g = GrowingGenerator(self.channels, self.p["nfc"], self.p["num_layer"], self.p["negative_slope"],
                                 batch_norm=self.p["batch_norm"])
            init_weights(g)
        return g.to(self.device)

    def _new_critic(self, seed: int, stage: int) -> Critic:
        with seeded(derive_seed(seed, NAME, "init", "D", stage)):
            d = Critic(self.channels, self.p["nfc"], self.p["num_layer"], self.p["negative_slope"])
            init_weights(d)
        return d.to(self.device)

    def _noise(self, stages: int, gen: torch.Generator) -> list[torch.Tensor]:
        """[z_0 (1, C, h_0, w_0), z_n (1, nfc, h_n + 2L, w_n + 2L) for n = 1 .. stages-1]."""
        L, out = self.p["num_layer"], []
        for n in range(stages):
            h, w = self.sizes[n]
            shape = (1, self.channels, h, w) if n == 0 else (1, self.p["nfc"], h + 2 * L, w + 2 * L)
            out.append(torch.randn(*shape, generator=gen, device=self.device))
        return out

    def _fixed_noise(self, stage: int, seed: int, real0: torch.Tensor) -> torch.Tensor:
        """z*_0 = the real coarsest image; z*_n a fixed N(0, 1) draw (CPU RNG: device-independent)."""
        if stage == 0:
            return real0
        h, w = self.sizes[stage]
        L = self.p["num_layer"]
        gen = make_generator(derive_seed(seed, NAME, "z_opt", stage), "cpu")
        return torch.randn(1, self.p["nfc"], h + 2 * L, w + 2 * L, generator=gen).to(self.device)

    def _optimizer_g(self, stage: int) -> tuple[torch.optim.Optimizer, list[float]]:
        """Adam over the top ``train_depth`` stages (lr * lr_scale^k, k stages below the top), the
        head while stage < train_depth (lr * lr_scale^stage) and the tail (lr); the rest frozen."""
        p, G = self.p, self.G
        depth = p["train_depth"]
        for prm in G.parameters():
            prm.requires_grad_(False)
        trained = list(G.body)[-depth:]
        groups = [{"params": list(b.parameters()), "lr": p["lr_g"] * p["lr_scale"] ** (len(trained) - 1 - i)}
                  for i, b in enumerate(trained)]
        if stage - depth < 0:
            groups.append({"params": list(G.head.parameters()), "lr": p["lr_g"] * p["lr_scale"] ** stage})
        groups.append({"params": list(G.tail.parameters()), "lr": p["lr_g"]})
        for grp in groups:
            for prm in grp["params"]:
                prm.requires_grad_(True)
        return torch.optim.Adam(groups, lr=p["lr_g"], betas=(p["beta1"], 0.999)), [grp["lr"] for grp in groups]

    # ------------------------------------------------------------------ fit
    def fit(self, image: torch.Tensor, *, seed: int, out_dir: str | Path) -> None:
        """Grow and train the generator stage by stage on ``image`` (C, H, W)."""
        image = check_gan_image(image, generator="ConSinGAN", min_size=self.p["min_size"])
        rt, p = self.runtime, self.p
        niter = int(rt.max_steps) if rt.max_steps is not None else p["niter"]
        self.channels = int(image.shape[0])
        self.sizes = consingan_sizes(image.shape[-2], image.shape[-1], p["min_size"], p["train_stages"])
        self.norm = range_normalizer(image, self.p["intensity"])
        from sinsemi.data.pyramid import resize

        x = self.norm.forward(image.float()).to(self.device)
        reals = [resize(x, size, mode="bicubic")[None] for size in self.sizes]
        fixed = [self._fixed_noise(n, seed, reals[0]) for n in range(len(self.sizes))]

        store = CheckpointStore(out_dir, NAME, rt)
        fp = fingerprint(self.params, seed, niter, image)
        ckpt = store.load(fp)
        self.G, self.noise_amps, d_state, start, partial = self._new_generator(seed), [], None, 0, None
        if ckpt is not None and ckpt["stages_done"] > 0:
            start = int(ckpt["stages_done"])
            for _ in range(start - 1):
                self.G.grow()
            self.G.load_state_dict(ckpt["G"])
            self.noise_amps = [float(a) for a in ckpt["noise_amps"]]
            d_state = ckpt["D"]
        if ckpt is not None:
            partial = ckpt.get("partial")

        for stage in range(start, len(self.sizes)):
            d_state = self._fit_stage(stage, reals, fixed, seed, niter, store, fp, d_state, partial)
            partial = None
        for prm in self.G.parameters():
            prm.requires_grad_(False)
        self.G.eval()

    def _fit_stage(self, stage: int, reals: list[torch.Tensor], fixed: list[torch.Tensor], seed: int, niter: int,
                   store: CheckpointStore, fp: dict, d_state: dict | None, partial: dict | None) -> dict:
        p, G, real = self.p, self.G, reals[stage]
        if stage > 0:
            G.grow()
        D = self._new_critic(seed, stage)
        if d_state is not None:
            D.load_state_dict(d_state)  # official: each stage's critic starts from the previous one
        gen = make_generator(derive_seed(seed, NAME, "train", stage), self.device)
        fixed = fixed[: stage + 1]

        # sigma_n: RMSE of the reconstruction through the new stage without its noise
        self.noise_amps.append(1.0 if stage == 0 else 0.0)
        if stage > 0:
            with torch.no_grad():
                self.noise_amps[stage] = noise_amplitude(real, G(fixed, self.sizes, self.noise_amps), p["noise_amp_init"])

        opt_g, lrs_g = self._optimizer_g(stage)
        opt_d = torch.optim.Adam(D.parameters(), lr=p["lr_d"], betas=(p["beta1"], 0.999))
        start = restore_pair(partial, G, D, opt_g, opt_d, gen, self.device)
        G.train()
        D.train()

        def snapshot(done: int) -> None:
            store.save(self._ckpt_state(fp, stage, g_before, d_state, partial=pair_state(done, G, D, opt_g, opt_d, gen)))

        # the completed-stage weights a mid-stage checkpoint must also carry
        g_before = {k: v.clone() for k, v in G.state_dict().items() if not k.startswith(f"body.{stage}.")} if stage > 0 else None

        def step(it: int) -> dict[str, float]:
            f = lr_factor(it, niter, p["lr_milestone"], p["gamma"])
            set_lr(opt_g, lrs_g, f)
            set_lr(opt_d, [p["lr_d"]], f)
            noise = self._noise(stage + 1, gen)
            for j in range(p["d_steps"]):
                if j == p["d_steps"] - 1:
                    fake = G(noise, self.sizes, self.noise_amps)
                else:
                    with torch.no_grad():
                        fake = G(noise, self.sizes, self.noise_amps)
                losses = critic_step(D, opt_d, real, fake, p["lambda_grad"], generator=gen)
            opt_g.zero_grad(set_to_none=True)
            with no_param_grads(D):
                err_g = -D(fake).mean()
            rec = p["alpha"] * F.mse_loss(G(fixed, self.sizes, self.noise_amps), real) if p["alpha"] > 0 else torch.zeros(())
            (err_g + rec).backward()
            for _ in range(p["g_steps"]):  # official: several Adam steps on one gradient
                opt_g.step()
            return {**losses, "errG": err_g.item(), "rec": float(rec.detach()), "noise_amp": self.noise_amps[stage]}

        try:
            run_iterations(runtime=self.runtime, name=NAME, scale=stage, n_scales=len(self.sizes), start=start,
                           niter=niter, global_offset=stage * niter, step=step, snapshot=snapshot)
        except BaseException:
            self.noise_amps.pop()
            raise
        d_state = {k: v.detach().clone() for k, v in D.state_dict().items()}
        store.save(self._ckpt_state(fp, stage + 1, G.state_dict(), d_state, partial=None))
        return d_state

    def _ckpt_state(self, fp: dict, stages_done: int, g_state: dict | None, d_state: dict | None,
                    partial: dict | None) -> dict:
        """Completed stages (G with ``stages_done`` stages, their sigma_n, the last critic) + the
        running stage's full state in ``partial`` (mid-stage, ``g_state`` is G before this stage)."""
        return {"fingerprint": fp, "stages_done": stages_done, "G": g_state,
                "noise_amps": list(self.noise_amps[:stages_done]), "D": d_state, "partial": partial}

    # ------------------------------------------------------------------ sample
    @torch.no_grad()
    def sample(self, seeds: Sequence[int], **settings: Any) -> SampleOutput:
        """One sample per seed, ``samples`` (len(seeds), C, H, W) in the training image's intensity
        scale; sample i draws all its noise maps from its own generator seeded with ``seeds[i]``.
        No sampler settings. ``nfe``: 1 (one pass of the growing G); ``clamped_pixels``: values
        outside [-1, 1]."""
        seeds = check_seeds(seeds)
        if settings:
            raise InputError(f"{NAME}: unknown sampler settings {sorted(settings)} (ConSinGAN takes none)")
        if self.G is None or not self.sizes:
            raise InputError(f"{NAME}: not fitted: call fit() or load() before sample()")
        out = [self.G(self._noise(len(self.sizes), gen), self.sizes, self.noise_amps)
               for gen in generators_for(seeds, device=self.device)]
        samples, clamped = self.norm.inverse_counted(torch.cat(out))
        return SampleOutput(samples=samples.float().cpu(), nfe=1, clamped_pixels=clamped)

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> None:
        if self.G is None or not self.sizes:
            raise InputError(f"{NAME}: nothing to save: fit() first")
        state = {"sizes": torch.tensor(self.sizes), "channels": self.channels,
                 "noise_amps": torch.tensor(self.noise_amps, dtype=torch.float64), "norm": self.norm.state_dict(),
                 "G": self.G.state_dict()}
        write_model(directory, NAME, self.params, state)

    @classmethod
    def load(cls, directory: str | Path, *, runtime: Runtime | None = None) -> "ConSinGAN":
        _, params, state = read_model(directory, expected=NAME)
        self = cls(runtime=runtime, **params)
        try:
            self.sizes = [tuple(int(v) for v in s) for s in state["sizes"].tolist()]
            self.channels = int(state["channels"])
            self.noise_amps = [float(a) for a in state["noise_amps"].tolist()]
            self.norm = RangeMap.from_state(state["norm"])
            G = GrowingGenerator(self.channels, self.p["nfc"], self.p["num_layer"], self.p["negative_slope"],
                                 stages=len(self.sizes), batch_norm=self.p["batch_norm"])
            G.load_state_dict(state["G"])
        except (KeyError, RuntimeError, TypeError) as e:
            raise InputError(f"{NAME}: corrupt saved model in {directory}: {type(e).__name__}: {e}") from None
        self.G = G.to(self.device).eval()
        for prm in self.G.parameters():
            prm.requires_grad_(False)
        return self
