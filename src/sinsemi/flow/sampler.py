"""Samplers of the multi-scale bridge, coarse to fine: explicit loops over a time grid.

At each scale s, t runs from 1 (degraded) to 0 (clean). Scale 0 starts from x1 ~ N(0, I); every
finer scale starts from the upsampled (bilinear) result of the coarser one, which is that scale's
x1. Four kinds, each a pure function of (velocity, x, grid, per-sample generators):

``ode``     probability-flow Euler:  x <- x - dt v.  The path velocity u_t is d x_t / dt along eq. 1
            with z fixed, so the marginal field v = E[u_t | x_t] transports the marginals exactly.
``em``      the paper's eq. 4:  x <- x - dt v + sqrt(dt) g sqrt(t(1-t)) z  (g = sigma by default;
            g = 1 is the published code). It adds noise without the matching drift, so its
            marginals are not eq. 1's (kept to reproduce the paper).
``sde``     eq. 4 with the score correction. For dx = v dt, the SDE dx = [v + g_t^2/2 grad log p_t] dt
            + g_t dW has the same marginals (their Fokker-Planck terms cancel); run backward in t
            (dt > 0 the step size)::

                x <- x - dt v + dt (g_t^2 / 2) score + sqrt(dt) g_t z,    g_t = g sqrt(t(1-t))

            with the score from Tweedie: x_t | x0 is Gaussian around its mean m_t, so
            score = -(x_t - m_t(x0_hat)) / Var(x_t | x0). At s > 0, m_t = (1-t) x0_hat + t x1 and
            Var = sigma^2 t(1-t); at s = 0, m_t = (1-t) x0_hat and Var = s_t^2 = t^2 + sigma^2 t(1-t).
            x0_hat comes from v in closed form (:mod:`sinsemi.flow.path`). The last step returns x0_hat.
``bridge``  the exact posterior step (I2SB-style). At s > 0 x_t given (x0, x1) is a Brownian bridge,
            so given x0_hat and x_t::

                x_{t'} ~ N(x0_hat + (t'/t)(x_t - x0_hat), sigma^2 t'(t - t') / t)

            At s = 0 (x1 ~ N(0, I), unknown to the net) the path x_t = (1-t) x0 + t x1 + sigma B_t is a
            Gaussian process given x0 with Cov(x_t', x_t) = t t' + sigma^2 t'(1-t) (t' < t), so::

                x_{t'} ~ N((1-t') x0_hat + rho (x_t - (1-t) x0_hat), s_t'^2 - rho^2 s_t^2),
                rho = (t t' + sigma^2 t'(1-t)) / s_t^2

            (``coarse="ode"`` uses the ODE at scale 0 instead). The last step returns x0_hat.

Every random draw of sample i comes from its own generator ``gens[i]``, so sample i is the same
whatever the batch it is drawn in. NFE = steps per scale * scales for every kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from sinsemi.data.pyramid import resize
from sinsemi.flow.path import SIGMA, gaussian_std, x0_from_velocity_bridge, x0_from_velocity_gaussian
from sinsemi.seeding import randn_per_sample

#: v(x (N, C, H, W), t (N,), s) -> (N, C, H, W): the (possibly guided) velocity at scale s.
VelocityFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
OnStep = Callable[[], None] | None

KINDS = ("bridge", "ode", "em", "sde")
COARSE = ("posterior", "ode")


@dataclass
class SamplerOutput:
    """``samples``: (N, C, H, W) at the finest scale; ``intermediates``: the result at every scale
    (coarsest first; empty unless asked for); ``nfe``: velocity evaluations per sample."""

    samples: torch.Tensor
    intermediates: list[torch.Tensor] = field(default_factory=list)
    nfe: int = 0


def time_grid(steps: int, *, device=None) -> torch.Tensor:
    """Uniform grid 1 = t_0 > t_1 > ... > t_steps = 0, shape (steps + 1,)."""
    # validated where the job starts (sinsemi.generators.params.SinSEMISampler)
    assert isinstance(steps, int) and not isinstance(steps, bool) and steps > 0, steps
    return torch.linspace(1.0, 0.0, steps + 1, device=device, dtype=torch.float64)


def _v(velocity: VelocityFn, x: torch.Tensor, t: float, scale: int) -> torch.Tensor:
    return velocity(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.float32), scale).to(x.dtype)


def _noise(gens: Sequence[torch.Generator], x: torch.Tensor) -> torch.Tensor:
    return randn_per_sample(gens, x.shape[1:], device=x.device, dtype=x.dtype)


def _x0_hat(x: torch.Tensor, v: torch.Tensor, t: float, x1: torch.Tensor | None, sigma: float, eps: float) -> torch.Tensor:
    tt = torch.tensor(t, dtype=x.dtype, device=x.device)
    if x1 is None:
        return x0_from_velocity_gaussian(x, v, tt, sigma=sigma, eps=eps)
    return x0_from_velocity_bridge(x, v, tt, x1, eps=eps)


def ode(velocity: VelocityFn, x: torch.Tensor, grid: torch.Tensor, *, scale: int = 0,
        on_step: OnStep = None) -> tuple[torch.Tensor, int]:
    """Euler on dx/dt = v over ``grid`` (decreasing t). Returns (x at grid[-1], NFE)."""
    for k in range(len(grid) - 1):
        t, t_next = float(grid[k]), float(grid[k + 1])
        x = x - (t - t_next) * _v(velocity, x, t, scale)
        if on_step is not None:
            on_step()
    return x, len(grid) - 1


def euler_maruyama(velocity: VelocityFn, x: torch.Tensor, grid: torch.Tensor, gens: Sequence[torch.Generator], *,
                   scale: int = 0, noise: float = SIGMA, on_step: OnStep = None) -> tuple[torch.Tensor, int]:
    """Eq. 4 as published (no score term). x: (N, C, H, W) at t = grid[0]; gens: one per sample."""
    for k in range(len(grid) - 1):
        t, t_next = float(grid[k]), float(grid[k + 1])
        dt = t - t_next
        x = x - dt * _v(velocity, x, t, scale)
        g_t = noise * math.sqrt(max(t * (1.0 - t), 0.0))
        if g_t > 0.0:
            x = x + math.sqrt(dt) * g_t * _noise(gens, x)
        if on_step is not None:
            on_step()
    return x, len(grid) - 1


def score_corrected_sde(velocity: VelocityFn, x: torch.Tensor, grid: torch.Tensor, gens: Sequence[torch.Generator], *,
                        x1: torch.Tensor | None, scale: int = 0, noise: float = SIGMA, sigma: float = SIGMA,
                        t_eps: float = 1e-2, on_step: OnStep = None) -> tuple[torch.Tensor, int]:
    """Euler–Maruyama with the score correction (module docstring). ``x1``: this scale's known end
    (s > 0) or None (s = 0, x1 ~ N(0, I))."""
    n_steps = len(grid) - 1
    for k in range(n_steps):
        t, t_next = float(grid[k]), float(grid[k + 1])
        dt = t - t_next
        v = _v(velocity, x, t, scale)
        x0 = _x0_hat(x, v, t, x1, sigma, t_eps)
        if k == n_steps - 1:  # t_next = 0: the clean estimate, no noise left to add
            x = x0
        else:
            g2 = noise * noise * t * (1.0 - t)  # g_t^2
            if x1 is None:
                var = t * t + sigma * sigma * t * (1.0 - t)
                score = -(x - (1.0 - t) * x0) / var
            else:
                # g_t^2 / Var = noise^2 / sigma^2: finite at t = 1 where both vanish
                score = -(x - (1.0 - t) * x0 - t * x1) / max(sigma * sigma * t * (1.0 - t), 1e-12)
            x = x - dt * v + dt * 0.5 * g2 * score
            if g2 > 0.0:
                x = x + math.sqrt(dt * g2) * _noise(gens, x)
        if on_step is not None:
            on_step()
    return x, n_steps


def bridge_posterior(velocity: VelocityFn, x: torch.Tensor, grid: torch.Tensor, gens: Sequence[torch.Generator], *,
                     x1: torch.Tensor | None, scale: int = 0, sigma: float = SIGMA, t_eps: float = 1e-2,
                     on_step: OnStep = None) -> tuple[torch.Tensor, int]:
    """The exact posterior step given x0_hat (module docstring): Brownian bridge at s > 0, the
    Gaussian path's conditional at s = 0 (``x1`` None)."""
    n_steps = len(grid) - 1
    for k in range(n_steps):
        t, t_next = float(grid[k]), float(grid[k + 1])
        v = _v(velocity, x, t, scale)
        x0 = _x0_hat(x, v, t, x1, sigma, t_eps)
        if t_next <= 0.0:
            x = x0
        else:
            if x1 is not None:  # Brownian bridge pinned at x0_hat (time 0) and x (time t)
                mean = x0 + (t_next / t) * (x - x0)
                var = sigma * sigma * t_next * (t - t_next) / t
            else:  # Gaussian process of scale 0, conditioned on x0_hat and x_t
                st2 = float(gaussian_std(torch.tensor(t), sigma)) ** 2
                st2n = float(gaussian_std(torch.tensor(t_next), sigma)) ** 2
                rho = (t * t_next + sigma * sigma * t_next * (1.0 - t)) / st2
                mean = (1.0 - t_next) * x0 + rho * (x - (1.0 - t) * x0)
                var = max(st2n - rho * rho * st2, 0.0)
            x = mean + math.sqrt(var) * _noise(gens, x) if var > 0.0 else mean
        if on_step is not None:
            on_step()
    return x, n_steps


def integrate_scale(velocity: VelocityFn, x: torch.Tensor, grid: torch.Tensor, gens: Sequence[torch.Generator], *,
                    kind: str, scale: int, x1: torch.Tensor | None, noise: float, sigma: float = SIGMA,
                    t_eps: float = 1e-2, coarse: str = "posterior", on_step: OnStep = None) -> tuple[torch.Tensor, int]:
    """One scale with sampler ``kind`` (see :data:`KINDS`). Returns (x at t = 0, NFE)."""
    if kind == "ode" or (kind == "bridge" and x1 is None and coarse == "ode"):
        return ode(velocity, x, grid, scale=scale, on_step=on_step)
    if kind == "em":
        return euler_maruyama(velocity, x, grid, gens, scale=scale, noise=noise, on_step=on_step)
    if kind == "sde":
        return score_corrected_sde(velocity, x, grid, gens, x1=x1, scale=scale, noise=noise, sigma=sigma,
                                   t_eps=t_eps, on_step=on_step)
    if kind == "bridge":
        return bridge_posterior(velocity, x, grid, gens, x1=x1, scale=scale, sigma=sigma, t_eps=t_eps, on_step=on_step)
    raise ValueError(f"unknown sampler kind {kind!r}; known: {', '.join(KINDS)}")


def sample_pyramid(velocity: VelocityFn, sizes: Sequence[tuple[int, int]], channels: int,
                   gens: Sequence[torch.Generator], *, steps: int, kind: str = "em", noise: float = SIGMA,
                   sigma: float = SIGMA, t_eps: float = 1e-2, coarse: str = "posterior",
                   keep_intermediates: bool = False, device=None, on_step: OnStep = None,
                   start_scale: int = 0, start: torch.Tensor | None = None,
                   coarse_steps: int | None = None) -> SamplerOutput:
    """Sample ``len(gens)`` images: x1 ~ N(0, I) at sizes[0], then one scale after another, coarse to fine.

    sizes: (h, w) per scale, coarsest first. Returns a :class:`SamplerOutput` (NFE per sample =
    steps * number of scales run). ``start_scale`` > 0 skips the coarser scales: ``start``
    (N, C, h, w), an image of scale ``start_scale - 1`` (e.g. the training image's own level, to
    measure what the finer scales alone do), is upsampled into the first bridge. ``coarse_steps``:
    steps at scale 0 (None = ``steps``): the layout is made there from noise, and a step there costs
    (h0 / h)^2 of a finest-scale step.
    """
    assert kind in KINDS and coarse in COARSE, (kind, coarse)  # validated where the job starts
    if not 0 <= start_scale < len(sizes) or (start_scale > 0) != (start is not None):
        raise ValueError(f"start_scale={start_scale} needs a start image exactly when > 0 (scales: {len(sizes)})")
    device = device if device is not None else gens[0].device
    grid = time_grid(steps)
    grid0 = grid if coarse_steps is None or coarse_steps == steps else time_grid(coarse_steps)
    x = randn_per_sample(gens, (channels, *sizes[0]), device=device) if start is None else start.to(device)
    inter, nfe = [], 0
    for s, size in enumerate(sizes):
        if s < start_scale:
            continue
        x1 = None
        if s > 0:
            x = resize(x, tuple(size))  # bilinear upsampling: the next scale's x at t = 1
            x1 = x
        x, k = integrate_scale(velocity, x, grid0 if s == 0 else grid, gens, kind=kind, scale=s, x1=x1, noise=noise, sigma=sigma,
                               t_eps=t_eps, coarse=coarse, on_step=on_step)
        nfe += k
        if keep_intermediates:
            inter.append(x.detach().clone())
    return SamplerOutput(samples=x, intermediates=inter, nfe=nfe)
