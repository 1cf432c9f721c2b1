"""The Schrödinger-bridge probability path and its CFM target (eq. 1-2).

t = 0 is the clean image x0, t = 1 the degraded one x1 (noise at the coarsest scale, the upsampled
coarser level above it)::

    x_t = (1 - t) x0 + t x1 + sigma sqrt(t (1 - t)) z                     (eq. 1)
    u_t = x1 - x0 + sigma z (1 - 2t) / (2 sqrt(t (1 - t)))                 (eq. 2)

u_t equals torchcfm's ``(1 - 2t) / (2 t (1 - t)) (x_t - mu_t) + x1 - x0`` with mu_t = (1-t) x0 + t x1.
The factor diverges at t in {0, 1}; we evaluate it at t clamped to [eps, 1 - eps], which keeps it
finite and keeps its sign (the published code clipped it to +2 at both ends, flipping the sign
near t = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SIGMA = 0.35  # the paper's bridge noise level


@dataclass(frozen=True)
class BridgePoint:
    """One draw of the path. All tensors (N, C, H, W).

    ``x_t``: the network input; ``u_t``: the regression target; ``mu_t``: the path mean; ``z``: the noise.
    """

    x_t: torch.Tensor
    u_t: torch.Tensor
    mu_t: torch.Tensor
    z: torch.Tensor


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) or scalar t -> broadcastable (N, 1, ..., 1) in ``like``'s dtype/device."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.ndim - 1))) if t.ndim else t


def target_factor(t: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """(1 - 2t) / (2 sqrt(t (1 - t))) evaluated at t clamped to [eps, 1 - eps] (same sign as 1 - 2t)."""
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    tc = t.clamp(eps, 1.0 - eps)
    return (1.0 - 2.0 * tc) / (2.0 * torch.sqrt(tc * (1.0 - tc)))


def bridge_point(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, z: torch.Tensor, *,
                 sigma: float = SIGMA, eps: float = 1e-2) -> BridgePoint:
    """x_t (eq. 1) and u_t (eq. 2) for clean ``x0``, degraded ``x1``, times ``t`` (N,) and noise ``z``.

    x0, x1, z: (N, C, H, W); t: (N,) in [0, 1] (or a scalar).
    """
    tb = _per_sample(t, x0)
    mu_t = (1.0 - tb) * x0 + tb * x1
    x_t = mu_t + sigma * torch.sqrt((tb * (1.0 - tb)).clamp_min(0.0)) * z
    u_t = x1 - x0 + sigma * z * target_factor(tb, eps)
    return BridgePoint(x_t=x_t, u_t=u_t, mu_t=mu_t, z=z)


# ----------------------------------------------------------------------------- the path inverted
# A velocity net trained on eq. 3 predicts v ~ E[u_t | x_t]. Written with the clean estimate
# x0_hat = E[x0 | x_t], the two equations of eq. 1-2 are linear in x0, so v gives x0_hat in closed form.
def bridge_k(t: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """k(t) = f(t_c) / sqrt(t (1 - t)): u_t = x1 - x0 + k (x_t - (1-t) x0 - t x1) on the bridge path.

    At t in {0, 1} the denominator is 0; it is clamped so that k * 0 stays 0 (x_t equals its pinned end).
    """
    return target_factor(t, eps) / torch.sqrt((t * (1.0 - t)).clamp_min(1e-12))


def x0_from_velocity_bridge(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor, x1: torch.Tensor, *,
                            eps: float = 1e-2) -> torch.Tensor:
    """x0_hat for a known end x1 (scales s > 0): from v = x1 - x0 + k (x_t - (1-t) x0 - t x1),

        x0_hat = (x1 + k (x_t - t x1) - v) / (1 + k (1 - t))

    (= 2t [x1 + k (x_t - t x1) - v] where t is not clamped, since then 1 + k (1 - t) = 1 / (2t)).
    x_t, v, x1: (N, C, H, W); t: (N,) or a scalar.
    """
    tb = _per_sample(t, x_t)
    k = bridge_k(tb, eps)
    return (x1 + k * (x_t - tb * x1) - v) / (1.0 + k * (1.0 - tb))


def gaussian_std(t: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """s_t with s_t^2 = t^2 + sigma^2 t (1 - t): the spread of x_t given x0 when x1 ~ N(0, I) (scale 0)."""
    return torch.sqrt(t * t + sigma * sigma * t * (1.0 - t))


def gaussian_c(t: torch.Tensor, sigma: float = SIGMA, eps: float = 1e-2) -> torch.Tensor:
    """c_t with E[u_t | x_t, x0] = -x0 + c_t (x_t - (1-t) x0) when x1 ~ N(0, I) (scale 0).

    Given x0, r = x_t - (1-t) x0 = t x1 + sigma sqrt(t(1-t)) z is N(0, s_t^2), so E[x1 | r] = t r / s_t^2 and
    E[z | r] = sigma sqrt(t(1-t)) r / s_t^2; with u_t = x1 - x0 + sigma z f(t_c):
    c_t = (t + sigma^2 f(t_c) sqrt(t(1-t))) / s_t^2  (= s_t' / s_t where t is not clamped).
    """
    st2 = (t * t + sigma * sigma * t * (1.0 - t)).clamp_min(1e-12)
    return (t + sigma * sigma * target_factor(t, eps) * torch.sqrt((t * (1.0 - t)).clamp_min(0.0))) / st2


def x0_from_velocity_gaussian(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor, *, sigma: float = SIGMA,
                              eps: float = 1e-2) -> torch.Tensor:
    """x0_hat at scale 0 (x1 ~ N(0, I), unknown to the net): from v = -x0 + c_t (x_t - (1-t) x0),

        x0_hat = (c_t x_t - v) / (1 + c_t (1 - t)).
    """
    tb = _per_sample(t, x_t)
    c = gaussian_c(tb, sigma, eps)
    return (c * x_t - v) / (1.0 + c * (1.0 - tb))
