"""GPDM: generative patch distribution matching (Elnekave & Weiss, ECCV 2022).

No training: ``fit`` keeps the image and its pyramid; each sample optimises its own pixels.

* Pyramid heights (coarsest first): h_0 = H, h_{l+1} = floor(h_l r) while h_l > ``coarse_size``
  (official r = 0.85, coarse size 21: 96 px -> 19, 23, 28, 34, 40, 48, 57, 68, 81, 96, ten levels);
  widths in proportion; each level is the image resized (bilinear, antialiased).
* Init: y = 0 + sigma z at full size (sigma = 1.5 on the [-1, 1] working scale), resized down to
  the coarsest level.
* At each level: y <- resize(y); ``steps_per_level`` Adam steps (lr) on the pixels of y minimising
  the patch sliced Wasserstein distance
      SWD(y, x_s) = mean_{p, i} | sort(<w_p, P(y)>)_i - sort(<w_p, P(x_s)>)_i |
  over all k x k patches P (stride 1) and ``num_projections`` unit directions w_p drawn afresh at
  every step (the smaller patch set is padded with random duplicates when the counts differ);
  then y is clipped to [-1, 1], and the lr of the next level is multiplied by ``lr_decay`` (0.9).

Each sample is optimised on its own (the official batched code pools patches across the batch);
its init noise, projections and duplicate picks come from its own ``torch.Generator``. The
working scale is the image's [min, max] stretched to [-1, 1] (``intensity: minmax``) so that sigma
and lr mean what they mean for natural images; samples come back in the image's scale.

Checked against ariel415el/GPDM, whose defaults moved between versions: ``GPDM.py`` ``generate``
(lr 0.01, 300 steps per level, ``lr *= 0.9`` after every level, the output clipped to [-1, 1] after
each level; ``lr_decay`` was missing here before this re-read, 1.0 restores that), the scripts'
``PatchSWDLoss(patch_size=7, stride=1, num_proj=64)`` and ``additive_noise_sigma=1.5``, the pyramid
of its retargeting scripts (``GPDM(coarse_dim=21, pyr_factor=0.85, noise_sigma=1.5)``); ``tests/reproduce_paper_table.py`` (the
paper's table) ran an older ``GPDM`` class with lr 0.05 and ``coarse_dim=28`` (sampler.lr=0.05,
generator.coarse_size=28 reproduce it). Images enter as ``cv2pt``: [0, 1] -> [-1, 1], i.e.
``intensity: raw``.

Runs in float32 whatever ``runtime.precision`` (nearest-neighbour choices and sorts are exact
operations that low precision would change); ``runtime.max_steps`` is ignored (nothing is trained):
the cost knob is the sampler setting ``steps_per_level``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from sinsemi.data.pyramid import resize
from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, SampleOutput, check_seeds
from sinsemi.generators.common.patches import RangeMap, extract_patches
from sinsemi.generators.common.training_free import TrainingFreeGenerator
from sinsemi.progress import track
from sinsemi.seeding import generators_for


def gpdm_pyramid_sizes(height: int, width: int, *, factor: float, coarse_size: int, patch_size: int) -> list[tuple[int, int]]:
    """GPDM's level sizes, coarsest first, ending at (height, width); see the module docstring."""
    if not 0.0 < factor < 1.0:
        raise InputError(f"gpdm: pyramid_factor must be in (0, 1), got {factor}")
    heights = [height]
    while heights[-1] > coarse_size:
        heights.append(int(heights[-1] * factor))
    sizes = [(h, int(width * h / height)) for h in reversed(heights)]
    sizes[-1] = (height, width)
    if min(sizes[0]) < patch_size:
        raise InputError(
            f"gpdm: image {height}x{width} is too small for its pyramid: the coarsest level would be "
            f"{sizes[0][0]}x{sizes[0][1]}, smaller than one {patch_size}x{patch_size} patch "
            f"(lower coarse_size/patch_size or use a larger image)"
        )
    return sizes


def random_directions(n: int, dim: int, g: torch.Generator, device) -> torch.Tensor:
    """``n`` random unit vectors (n, dim) in patch space."""
    w = torch.randn(n, dim, generator=g, device=device)
    return w / w.norm(dim=1, keepdim=True)


def _pad_to_length(p: torch.Tensor, length: int, g: torch.Generator) -> torch.Tensor:
    """(P, m) -> (P, length): repeat the m columns, then add randomly chosen ones (m <= length)."""
    m = p.shape[1]
    reps = length // m
    extra = torch.randperm(m, generator=g, device=g.device)[: length - reps * m].to(p.device)
    return torch.cat([p.repeat(1, reps), p[:, extra]], dim=1)


def sort_rows(v: torch.Tensor) -> torch.Tensor:
    """Each row of ``v`` (P, L) sorted ascending; differentiable when ``v`` requires grad.

    On CPU the sort runs in NumPy (a gather along its argsort when a gradient is needed), measured
    ~4x faster here than ``torch.sort`` on (64, 8100).
    """
    if v.device.type != "cpu":
        return v.sort(dim=1).values
    import numpy as np

    if not v.requires_grad:
        return torch.from_numpy(np.sort(v.numpy(), axis=1))
    order = torch.from_numpy(np.argsort(v.detach().numpy(), axis=1))
    return v.gather(1, order)


def patch_swd(y: torch.Tensor, x: torch.Tensor, directions: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Sliced Wasserstein (L1) distance between the patch sets of ``y`` and ``x`` (1, C, h, w).

    ``directions`` (P, C k^2): unit projection directions; proj[p, i] = <w_p, patch_i>. (Computed
    as unfold + matmul rather than conv2d: on CPU oneDNN spends seconds setting up each new shape.)
    """
    k = math.isqrt(directions.shape[1] // y.shape[1])
    py = directions @ extract_patches(y, k)[0].T  # (P, Ly)
    with torch.no_grad():
        px = directions @ extract_patches(x, k)[0].T  # (P, Lx), the target: no gradient
    if py.shape[1] < px.shape[1]:
        py = _pad_to_length(py, px.shape[1], g)
    elif px.shape[1] < py.shape[1]:
        px = _pad_to_length(px, py.shape[1], g)
    return (sort_rows(py) - sort_rows(px)).abs().mean()


class GPDM(TrainingFreeGenerator):
    """Generative patch distribution matching; see the module docstring.

    Params: ``patch_size`` (7), ``pyramid_factor`` (0.85), ``coarse_size`` (21), ``intensity``
    ("minmax" | "raw"). Sampler settings: ``steps_per_level`` (300), ``lr`` (0.01),
    ``num_projections`` (64), ``noise_std`` (1.5), ``lr_decay`` (0.9 per level).
    """

    name = "gpdm"
    working_range = (-1.0, 1.0)

    def __init__(self, runtime: Runtime | None = None, *, patch_size: int = 7, pyramid_factor: float = 0.85,
                 coarse_size: int = 21, intensity: str = "minmax") -> None:
        if patch_size < 1:
            raise InputError(f"gpdm: patch_size must be >= 1, got {patch_size}")
        super().__init__(runtime, {"patch_size": int(patch_size), "pyramid_factor": float(pyramid_factor),
                                   "coarse_size": int(coarse_size), "intensity": str(intensity)})
        self.patch_size = int(patch_size)

    # ------------------------------------------------------------------ pyramid (fit/save/load: base class)
    def _set_image(self, image: torch.Tensor, range_map: RangeMap) -> None:
        p = self.params
        sizes = gpdm_pyramid_sizes(*image.shape[-2:], factor=p["pyramid_factor"], coarse_size=p["coarse_size"],
                                   patch_size=p["patch_size"])
        self.image, self.range_map = image, range_map
        x = range_map.forward(image).to(self.runtime.device)[None]
        self.levels = [resize(x, size) for size in sizes]

    # ------------------------------------------------------------------ sampling
    def sample(self, seeds: Sequence[int], *, steps_per_level: int = 300, lr: float = 0.01,
               num_projections: int = 64, noise_std: float = 1.5, lr_decay: float = 0.9,
               **unknown: Any) -> SampleOutput:
        """One sample per seed, ``samples`` (len(seeds), C, H, W) in the image's scale; sample i uses
        only ``seeds[i]``. No net: ``nfe`` is None; the per-level clamp to [-1, 1] is part of the
        method, so ``clamped_pixels`` is 0."""
        if unknown:
            raise InputError(f"gpdm: unknown sampler setting(s) {sorted(unknown)}")
        seeds = check_seeds(seeds)
        self._check_fitted()
        if steps_per_level < 0 or num_projections < 1 or lr <= 0 or noise_std < 0 or lr_decay <= 0:
            raise InputError("gpdm: need steps_per_level >= 0, num_projections >= 1, lr > 0, noise_std >= 0, lr_decay > 0")
        out = []
        for g in track(generators_for(seeds, device=self.runtime.device), f"{self.name} sampling", unit="samples",
                       enabled=self.runtime.progress):
            y = self._generate(g, steps=int(steps_per_level), lr=float(lr), n_proj=int(num_projections),
                               noise_std=float(noise_std), lr_decay=float(lr_decay))
            out.append(self.range_map.inverse(y[0]).cpu())
        return SampleOutput(samples=torch.stack(out).float())

    def _generate(self, g: torch.Generator, *, steps: int, lr: float, n_proj: int, noise_std: float,
                  lr_decay: float = 0.9) -> torch.Tensor:
        """One sample on the working scale (1, C, H, W)."""
        full = self.levels[-1]
        c = full.shape[1]
        y = noise_std * torch.randn(full.shape, generator=g, device=full.device)
        for level, target in enumerate(self.levels):
            y = resize(y, tuple(target.shape[-2:]))
            lr_level = lr * lr_decay**level  # official GPDM.generate: lr *= 0.9 after each level
            m, v = torch.zeros_like(y), torch.zeros_like(y)  # Adam moments, fresh at every level
            for t in range(1, steps + 1):
                y.requires_grad_(True)
                w = random_directions(n_proj, c * self.patch_size**2, g, full.device)
                (grad,) = torch.autograd.grad(patch_swd(y, target, w, g), y)
                y = adam_step(y.detach(), grad, m, v, t, lr_level)
            y = y.detach().clamp_(-1.0, 1.0)
        return y


def adam_step(y: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, lr: float,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.Tensor:
    """One Adam step (Kingma & Ba 2015, Alg. 1; torch's defaults) on ``y``; updates m, v in place.

    Written out rather than ``torch.optim.Adam``, whose constructor imports torch._dynamo (seconds).
    """
    b1, b2 = betas
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(eps)
    return y - (lr / (1 - b1**t)) * m / denom
