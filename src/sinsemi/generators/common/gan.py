"""What SinGAN and ConSinGAN share: conv blocks, WGAN-GP, noise amplitude, normalisation, the
resumable per-scale training loop and its checkpoint file.

Plain PyTorch (no Lightning, no Hydra). Images are (N, C, H, W) tensors normalised to [-1, 1]
(:func:`range_normalizer`), as both official codes do for [0, 1] images.
"""

from __future__ import annotations

import contextlib
import logging
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from sinsemi.errors import InputError, pickle_refusal
from sinsemi.generators.common.patches import RangeMap

log = logging.getLogger("sinsemi.generators.gan")

CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------- networks
def conv_block(c_in: int, c_out: int, *, negative_slope: float, batch_norm: bool,
               running_stats: bool = True) -> nn.Sequential:
    """3x3 conv (no padding, so H, W shrink by 2) [-> BatchNorm] -> LeakyReLU.

    ``running_stats=False``: the BatchNorm always normalises with the batch's own statistics, in
    eval mode too (a code that never calls ``eval()`` and samples one image at a time)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=0)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out, track_running_stats=running_stats))
    layers.append(nn.LeakyReLU(negative_slope))
    return nn.Sequential(*layers)


def init_weights(module: nn.Module) -> None:
    """The official initialisation: conv weights ~ N(0, 0.02^2); BN weight ~ N(1, 0.02^2), bias 0.

    Draws from the global RNG: call it inside :func:`seeded`.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (module construction, default inits) under ``torch.manual_seed(seed)`` without
    disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def derive_seed(seed: int, *keys: Any) -> int:
    """A 63-bit seed for (seed, *keys), e.g. (seed, "singan", scale): independent streams per scale,
    so a resumed scale draws exactly what an uninterrupted one would."""
    h = hashlib.sha256(repr((int(seed), *keys)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def make_generator(seed: int, device: str | torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


@contextlib.contextmanager
def no_param_grads(module: nn.Module) -> Iterator[None]:
    """Gradients still flow through ``module`` to its input, but its own weights get none (the
    critic during a generator step: saves its weight-gradient work)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode (BatchNorm uses its running statistics from then on)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


# ----------------------------------------------------------------------------- resampling
def pyramid_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The official ``imresize`` output size ceil(scale * (H, W)); a tolerance keeps e.g.
    96 * (25/96) = 25.000000000004 from rounding up to 26."""
    return (max(1, math.ceil(height * scale - 1e-6)), max(1, math.ceil(width * scale - 1e-6)))


def upsample(x: torch.Tensor, size: tuple[int, int], *, align_corners: bool = False) -> torch.Tensor:
    """Bicubic resize of (N, C, h, w) to ``size`` (the official codes resize bicubically)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=align_corners)


# ----------------------------------------------------------------------------- losses
def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     weight: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP term as in both official codes (Gulrajani et al. 2017, eq. 3, per pixel):

        x_hat = a * real + (1 - a) * fake,   a ~ U[0, 1) (one scalar per call),
        GP    = weight * mean_{n,h,w} ( || d(sum critic(x_hat)) / d x_hat[n, :, h, w] ||_2 - 1 )^2,

    the norm being over the channel axis at each pixel (the official ``gradients.norm(2, dim=1)``).
    ``fake`` is detached here: the penalty trains the critic only. Returns a scalar with a graph
    (``create_graph=True``) so it can be back-propagated into the critic.
    """
    a = torch.rand((), generator=generator, device=generator.device if generator is not None else real.device)
    x_hat = (a.to(real.dtype) * real.detach() + (1 - a.to(real.dtype)) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
    return weight * ((grad.norm(2, dim=1) - 1) ** 2).mean()


def critic_step(critic: nn.Module, optimizer: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor,
                gp_weight: float, *, generator: torch.Generator | None = None) -> dict[str, float]:
    """One WGAN-GP critic update: minimise -D(real) + D(fake) + GP. Returns the loss terms."""
    optimizer.zero_grad(set_to_none=True)
    d_real = critic(real).mean()
    d_fake = critic(fake.detach()).mean()
    gp = gradient_penalty(critic, real, fake, gp_weight, generator=generator)
    loss = -d_real + d_fake + gp
    loss.backward()
    optimizer.step()
    return {"D_real": d_real.item(), "D_fake": d_fake.item(), "gp": gp.item(), "errD": loss.item()}


def noise_amplitude(real: torch.Tensor, reconstruction: torch.Tensor, base: float) -> float:
    """sigma_n = base * RMSE(real, reconstruction) (SinGAN sec. 3; ``noise_amp_init`` = 0.1)."""
    return float(base * torch.sqrt(F.mse_loss(reconstruction.detach(), real.detach())))


def lr_factor(iteration: int, niter: int, milestone: float, gamma: float) -> float:
    """Step decay: x ``gamma`` from iteration ``round(milestone * niter)`` on (official: 1600 of 2000)."""
    return gamma if iteration >= int(round(milestone * niter)) else 1.0


def set_lr(optimizer: torch.optim.Optimizer, base_lrs: list[float], factor: float) -> None:
    for group, lr in zip(optimizer.param_groups, base_lrs):
        group["lr"] = lr * factor


# ----------------------------------------------------------------------------- normalisation
def range_normalizer(image: torch.Tensor, intensity: str = "minmax") -> RangeMap:
    """The official codes' ``norm``/``denorm`` onto [-1, 1]: ``intensity="raw"`` is theirs exactly
    ([0, 1] -> [-1, 1]); ``"minmax"`` maps the training image's per-channel [min, max] there (their
    map for an image spanning [0, 1]). The inverse clamps to [-1, 1] first, as ``denorm`` clamps to [0, 1]."""
    return RangeMap.fit(image, intensity, -1.0, 1.0, clamp=True)


def check_gan_image(image: torch.Tensor, *, generator: str, min_size: int) -> torch.Tensor:
    """A trainable (C, H, W) image whose short side reaches the generator's coarsest level."""
    from sinsemi.data.io import check_trainable

    if not isinstance(image, torch.Tensor):
        raise InputError(f"{generator}: the training image must be a torch.Tensor (C, H, W), got {type(image).__name__}")
    if not image.is_floating_point():
        raise InputError(f"{generator}: the training image must be a float tensor in its own intensity scale, got {image.dtype}")
    check_trainable(image, name=f"{generator} training image")
    h, w = image.shape[-2:]
    if min(h, w) < min_size:
        raise InputError(
            f"{generator}: image {h}x{w} is too small for its pyramid: the coarsest level is min_size={min_size} px "
            f"on the short side (set generator.min_size lower, e.g. 12 for a 32x32 image)"
        )
    return image


def check_positive_params(generator: str, **values: float) -> None:
    for key, v in values.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise InputError(f"{generator}: parameter {key} must be a positive number, got {v!r}")


# ----------------------------------------------------------------------------- checkpoints
class CheckpointStore:
    """``out_dir/checkpoints/last.pt``: the whole training state, rewritten atomically.

    The file carries a fingerprint (generator name, params, seed, budget, image); resuming with a
    different one raises :class:`InputError` instead of silently mixing two runs. ``runtime``: where
    :meth:`load` reads (:func:`~sinsemi.generators.base.resume_source`: this file, else
    ``runtime.resume_from``, e.g. another run's ``last.pt``); saves always go to :attr:`path`.
    """

    def __init__(self, out_dir: str | Path, name: str, runtime=None):
        from sinsemi.generators.base import Runtime

        self.path = Path(out_dir) / "checkpoints" / "last.pt"
        self.name = name
        self.runtime = runtime or Runtime()

    def save(self, state: Mapping[str, Any]) -> None:
        from sinsemi.data.io import save_checkpoint_file

        save_checkpoint_file({"format": CHECKPOINT_FORMAT, "name": self.name, **state}, self.path)

    def load(self, fingerprint: Mapping[str, Any]) -> dict | None:
        """The saved state, or None when there is none (or ``runtime.resume`` is off). Checks it
        belongs to this fit."""
        from sinsemi.generators.base import resume_source

        src = resume_source(self.path, self.runtime)
        if src is None:
            return None
        try:
            state = torch.load(src, map_location="cpu", weights_only=True)
        except Exception as e:
            raise pickle_refusal(src, e) or InputError(
                f"cannot read checkpoint {src}: {type(e).__name__}: {e} (delete it to start fresh)") from None
        if not isinstance(state, dict) or state.get("name") != self.name:
            got = state.get("name") if isinstance(state, dict) else type(state).__name__
            raise InputError(f"checkpoint {src} belongs to a '{got}' generator, not '{self.name}'")
        if not _same_fingerprint(state.get("fingerprint", {}), fingerprint):
            raise InputError(
                f"checkpoint {src} was written by a {self.name} fit with other settings, seed or image; "
                f"delete it or train with ckpt_path=null to start fresh"
            )
        if src != self.path:
            log.info("resuming %s from %s", self.name, src)
        return state


def fingerprint(params: Mapping[str, Any], seed: int, niter: int, image: torch.Tensor) -> dict:
    return {"params": dict(params), "seed": int(seed), "niter": int(niter), "image": image.detach().cpu().float().clone()}


def _same_fingerprint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for k in a:
        if isinstance(a[k], torch.Tensor) or isinstance(b[k], torch.Tensor):
            if not (isinstance(a[k], torch.Tensor) and isinstance(b[k], torch.Tensor)
                    and a[k].shape == b[k].shape and torch.equal(a[k], b[k])):
                return False
        elif a[k] != b[k]:
            return False
    return True


def optimizer_state_to_device(optimizer: torch.optim.Optimizer, device: str | torch.device) -> None:
    for st in optimizer.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                st[k] = v.to(device)


def pair_state(done: int, g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               gen: torch.Generator) -> dict:
    """A mid-scale checkpoint of a G/D pair: ``done`` iterations, weights, optimisers and the RNG."""
    return {"iteration": done, "G": g.state_dict(), "D": d.state_dict(), "opt_G": opt_g.state_dict(),
            "opt_D": opt_d.state_dict(), "rng": gen.get_state()}


def restore_pair(partial: Mapping[str, Any] | None, g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, gen: torch.Generator, device: str | torch.device) -> int:
    """Load :func:`pair_state` back (nothing without one); returns the iteration to resume at."""
    if partial is None:
        return 0
    g.load_state_dict(partial["G"])
    d.load_state_dict(partial["D"])
    opt_g.load_state_dict(partial["opt_G"])
    opt_d.load_state_dict(partial["opt_D"])
    optimizer_state_to_device(opt_g, device)
    optimizer_state_to_device(opt_d, device)
    gen.set_state(partial["rng"])
    return int(partial["iteration"])


# ----------------------------------------------------------------------------- the loop
def run_iterations(
    *,
    runtime,
    name: str,
    scale: int,
    n_scales: int,
    start: int,
    niter: int,
    global_offset: int,
    step: Callable[[int], dict[str, float]],
    snapshot: Callable[[int], None],
) -> dict[str, float]:
    """Iterations ``start .. niter-1`` of one scale: ``step(it)`` returns its losses; they are
    logged through ``runtime.log`` every ``runtime.log_every`` iterations (key
    ``<name>/scale<s>/<loss>``, step = iterations done over all scales); ``snapshot(it + 1)``
    checkpoints every ``runtime.checkpoint_every`` iterations. Returns the last losses."""
    its = range(start, niter)
    bar = None
    if runtime.progress and niter > start:
        from sinsemi.progress import Progress  # a bar on a terminal, a line every ~10 s in a file

        bar = Progress(niter, f"{name} scale {scale + 1}/{n_scales}", unit="iterations", initial=start)
    last: dict[str, float] = {}
    every = max(1, int(runtime.log_every or 1))
    ckpt_every = int(runtime.checkpoint_every or 0)
    try:
        for it in its:
            last = step(it)
            done = it + 1
            if done % every == 0 or done == niter:
                runtime.log({f"{name}/scale{scale}/{k}": v for k, v in last.items()}, step=global_offset + done)
            if bar is not None:
                bar.update(1, **{k: v for k, v in last.items() if k in ("errD", "errG", "rec")})
            if ckpt_every > 0 and done % ckpt_every == 0 and done < niter:
                snapshot(done)
    finally:
        if bar is not None:
            bar.close()
    return last
