"""Euler–Maruyama sampling of the multi-scale bridge, coarse to fine (eq. 4).

At each scale s, t runs from 1 (degraded) to 0 (clean) over a time grid::

    x <- x - dt v(x, t, s) + sqrt(dt) g sqrt(t (1 - t)) z,     z ~ N(0, I)      (eq. 4)

then x is upsampled (bilinear) to the next scale, where it is that scale's x at t = 1. Scale 0
starts from N(0, I). ``g`` is the noise scale (default: the training sigma 0.35; the published
code used 1). Every random draw of sample i comes from its own generator ``gens[i]``, so sample i
is the same whatever the batch it is drawn in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from sinsemi.data.pyramid import resize
from sinsemi.flow.path import SIGMA
from sinsemi.seeding import randn_per_sample

#: v(x (N, C, H, W), t (N,), s) -> (N, C, H, W): the (possibly guided) velocity at scale s.
VelocityFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class SamplerOutput:
    """``samples``: (N, C, H, W) at the finest scale; ``intermediates``: the result at every scale
    (coarsest first; empty unless asked for); ``nfe``: velocity evaluations per sample."""

    samples: torch.Tensor
    intermediates: list[torch.Tensor] = field(default_factory=list)
    nfe: int = 0


def time_grid(steps: int, *, device=None) -> torch.Tensor:
    """Uniform grid 1 = t_0 > t_1 > ... > t_steps = 0, shape (steps + 1,)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        from sinsemi.errors import InputError

        raise InputError(f"sampler steps must be a positive integer, got {steps!r}")
    return torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=torch.float64)


def euler_maruyama(velocity: VelocityFn, x: torch.Tensor, grid: torch.Tensor, gens: Sequence[torch.Generator], *,
                   scale: int = 0, noise: float = SIGMA, on_step: Callable[[], None] | None = None
                   ) -> tuple[torch.Tensor, int]:
    """Integrate eq. 4 over ``grid`` (decreasing t) at one scale. Returns (x at grid[-1], NFE).

    x: (N, C, H, W) at t = grid[0]; gens: one generator per sample (only used when noise > 0).
    """
    n = x.shape[0]
    nfe = 0
    for k in range(len(grid) - 1):
        t, t_next = float(grid[k]), float(grid[k + 1])
        dt = t - t_next
        v = velocity(x, torch.full((n,), t, device=x.device, dtype=torch.float32), scale)
        nfe += 1
        x = x - dt * v.to(x.dtype)
        diffusion = noise * math.sqrt(max(t * (1.0 - t), 0.0))
        if diffusion > 0.0:
            z = randn_per_sample(gens, x.shape[1:], device=x.device, dtype=x.dtype)
            x = x + math.sqrt(dt) * diffusion * z
        if on_step is not None:
            on_step()
    return x, nfe


def sample_pyramid(velocity: VelocityFn, sizes: Sequence[tuple[int, int]], channels: int,
                   gens: Sequence[torch.Generator], *, steps: int, noise: float = SIGMA,
                   keep_intermediates: bool = False, device=None,
                   on_step: Callable[[], None] | None = None) -> SamplerOutput:
    """Sample ``len(gens)`` images: N(0, I) at sizes[0], then eq. 4 at every scale, coarse to fine.

    sizes: (h, w) per scale, coarsest first. Returns a :class:`SamplerOutput` (NFE per sample =
    steps * number of scales).
    """
    device = device if device is not None else gens[0].device
    grid = time_grid(steps)
    x = randn_per_sample(gens, (channels, *sizes[0]), device=device)
    inter, nfe = [], 0
    for s, size in enumerate(sizes):
        if s > 0:
            x = resize(x, tuple(size))  # bilinear upsampling: the next scale's x at t = 1
        x, k = euler_maruyama(velocity, x, grid, gens, scale=s, noise=noise, on_step=on_step)
        nfe += k
        if keep_intermediates:
            inter.append(x.detach().clone())
    return SamplerOutput(samples=x, intermediates=inter, nfe=nfe)
