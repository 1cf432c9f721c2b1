"""Training-free LPIPS energy guidance (eq. 5, FreeDoM-style).

At step t of scale s the training image at that scale is diffused with eq. 1 at the same t (its
own x1: the upsampled coarser level, or N(0, I) at s = 0, and its own noise), giving ref_t. The
energy E(x) = LPIPS(x, ref_t) is differentiated w.r.t. the current x; the gradient is rescaled per
sample to the norm of the velocity and added to it::

    v_guided = v + w * (||v|| / ||grad_x E||) * grad_x E                        (eq. 5)

Since the sampler moves along -v, this descends the energy. w = 0 is plain sampling: no LPIPS call.
Inputs to LPIPS are the standardised images (as in the published code), channels averaged and
repeated to 3 when C != 3, and upsampled (bilinear) to at least ``LPIPS_MIN_SIZE`` px on the short
side, since AlexNet's pooling leaves nothing of smaller images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sinsemi.flow.path import SIGMA
from sinsemi.flow.sampler import VelocityFn
from sinsemi.seeding import randn_per_sample

LPIPS_MIN_SIZE = 32


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 3, H', W') for an RGB perceptual net (gray repeated; small images upsampled)."""
    if x.shape[1] != 3:
        x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    short = min(x.shape[-2:])
    if short < LPIPS_MIN_SIZE:
        f = LPIPS_MIN_SIZE / short
        x = torch.nn.functional.interpolate(x, size=(round(x.shape[-2] * f), round(x.shape[-1] * f)),
                                            mode="bilinear", align_corners=False)
    return x


def energy_gradient(lpips_fn: torch.nn.Module, x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x E, E) with E_i = LPIPS(x_i, ref_i). x, ref: (N, C, H, W); E: (N,)."""
    with torch.enable_grad():
        xg = x.detach().float().requires_grad_(True)
        energy = lpips_fn(to_rgb(xg), to_rgb(ref.detach().float())).reshape(x.shape[0])
        (grad,) = torch.autograd.grad(energy.sum(), xg)
    return grad, energy.detach()


def rescale_to(grad: torch.Tensor, v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``grad`` rescaled per sample to the L2 norm of ``v`` (both (N, ...))."""
    g_norm = grad.flatten(1).norm(dim=1).clamp_min(eps)
    v_norm = v.detach().float().flatten(1).norm(dim=1)
    return grad * (v_norm / g_norm).reshape(-1, *([1] * (grad.ndim - 1)))


class LPIPSGuidance:
    """Wraps a velocity with eq. 5.

    ``levels[s]``: the standardised training image at scale s, (C, h_s, w_s); ``conditions[s]``:
    its x1 (the upsampled coarser level; ``None`` at s = 0, where x1 ~ N(0, I) is drawn once per
    sample and scale). ``gens``: one generator per sample for the reference's noise (kept apart from
    the sampler's, so turning guidance on changes nothing else). ``weight`` w >= 0.
    """

    def __init__(self, lpips_fn: torch.nn.Module, levels: Sequence[torch.Tensor],
                 conditions: Sequence[torch.Tensor | None], gens: Sequence[torch.Generator], *,
                 weight: float, sigma: float = SIGMA):
        if weight < 0:
            from sinsemi.errors import InputError

            raise InputError(f"guidance strength must be >= 0, got {weight}")
        self.lpips_fn, self.levels, self.conditions = lpips_fn, list(levels), list(conditions)
        self.gens, self.weight, self.sigma = list(gens), float(weight), float(sigma)
        self._x1: dict[int, torch.Tensor] = {}
        self.last_energy: torch.Tensor | None = None

    def reference(self, t: float, s: int, device) -> torch.Tensor:
        """The training image at scale s diffused to time t (eq. 1), one per sample: (N, C, h, w)."""
        x0 = self.levels[s].to(device)[None].expand(len(self.gens), -1, -1, -1)
        if self.conditions[s] is not None:
            x1 = self.conditions[s].to(device)[None].expand_as(x0)
        else:
            if s not in self._x1:
                self._x1[s] = randn_per_sample(self.gens, x0.shape[1:], device=device)
            x1 = self._x1[s]
        z = randn_per_sample(self.gens, x0.shape[1:], device=device)
        return (1 - t) * x0 + t * x1 + self.sigma * (t * (1 - t)) ** 0.5 * z

    def __call__(self, velocity: VelocityFn) -> VelocityFn:
        if self.weight == 0.0:
            return velocity

        def guided(x: torch.Tensor, t: torch.Tensor, s: int) -> torch.Tensor:
            v = velocity(x, t, s)
            ref = self.reference(float(t[0]), s, x.device)
            grad, self.last_energy = energy_gradient(self.lpips_fn, x, ref)
            return v + self.weight * rescale_to(grad, v).to(v.dtype)

        return guided
