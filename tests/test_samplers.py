"""The four samplers against closed forms: a point-mass x0 gives an analytic velocity, and then the
marginals of eq. 1 are known at every t (mean/variance), so each sampler can be checked exactly."""

import math

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.flow.path import (bridge_point, gaussian_c, gaussian_std, target_factor, x0_from_velocity_bridge,
                               x0_from_velocity_gaussian)
from sinsemi.flow.sampler import KINDS, integrate_scale, sample_pyramid, time_grid
from sinsemi.seeding import generators_for

SIGMA, EPS = 0.35, 1e-4
N, HW = 160, 16  # 160 samples x 256 iid pixels per marginal estimate


def test_bridge_inverse_recovers_x0_from_the_target():
    g = torch.Generator().manual_seed(0)
    x0, x1, z = (torch.randn(6, 1, 5, 5, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0.003, 0.1, 0.3, 0.5, 0.8, 0.999], dtype=torch.float64)
    p = bridge_point(x0, x1, t, z, sigma=SIGMA, eps=1e-2)  # u_t with the clamped factor, as in training
    torch.testing.assert_close(x0_from_velocity_bridge(p.x_t, p.u_t, t, x1, eps=1e-2), x0)
    # unclamped: 1 + k (1 - t) = 1 / (2t), the form in the issue
    tt = torch.tensor([0.2, 0.6], dtype=torch.float64)
    p = bridge_point(x0[:2], x1[:2], tt, z[:2], sigma=SIGMA, eps=1e-2)
    k = target_factor(tt, 1e-2) / torch.sqrt(tt * (1 - tt))
    alt = 2 * tt.view(-1, 1, 1, 1) * (x1[:2] + k.view(-1, 1, 1, 1) * (p.x_t - tt.view(-1, 1, 1, 1) * x1[:2]) - p.u_t)
    torch.testing.assert_close(x0_from_velocity_bridge(p.x_t, p.u_t, tt, x1[:2], eps=1e-2), alt)


def test_gaussian_c_is_the_log_derivative_of_s_t_and_inverts():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    dlog = (torch.log(gaussian_std(t + h, SIGMA)) - torch.log(gaussian_std(t - h, SIGMA))) / (2 * h)
    torch.testing.assert_close(gaussian_c(t, SIGMA, 1e-3), dlog, rtol=1e-6, atol=1e-6)
    g = torch.Generator().manual_seed(1)
    x0, x = torch.randn(2, 19, 1, 3, 3, generator=g, dtype=torch.float64)
    tb = t.view(-1, 1, 1, 1)
    v = -x0 + gaussian_c(tb, SIGMA) * (x - (1 - tb) * x0)
    torch.testing.assert_close(x0_from_velocity_gaussian(x, v, t, sigma=SIGMA), x0)


def _point_mass_velocity(a: float, b: float | None, record: list):
    """E[u_t | x_t] for x0 = a (a point mass): with a known end b (s > 0) or x1 ~ N(0, I) (b None)."""
    def v(x, t, s):
        tb = t.to(x.dtype).view(-1, 1, 1, 1)
        record.append((float(t[0]), x.detach().clone()))
        if b is None:
            return -a + gaussian_c(tb, SIGMA, EPS) * (x - (1 - tb) * a)
        k = target_factor(tb, EPS) / torch.sqrt((tb * (1 - tb)).clamp_min(1e-12))
        return b - a + k * (x - (1 - tb) * a - tb * b)
    return v


def _run(kind: str, b: float | None, steps: int, coarse: str = "posterior", t0: float = 1.0):
    """Run one scale from t0 (x drawn from eq. 1's marginal there) to 0; returns (a, [(t, x)], x at 0)."""
    record: list = []
    a = 0.7
    gen = torch.Generator().manual_seed(5)
    eps = torch.randn(N, 1, HW, HW, generator=gen, dtype=torch.float64)
    if b is None:
        x, x1 = (1 - t0) * a + float(gaussian_std(torch.tensor(t0), SIGMA)) * eps, None
    else:
        x, x1 = (1 - t0) * a + t0 * b + SIGMA * math.sqrt(t0 * (1 - t0)) * eps, torch.full_like(eps, b)
    grid = torch.linspace(t0, 0.0, steps + 1, dtype=torch.float64)
    out, nfe = integrate_scale(_point_mass_velocity(a, b, record), x, grid, generators_for(range(N)),
                               kind=kind, scale=0 if b is None else 1, x1=x1, noise=SIGMA, sigma=SIGMA, t_eps=EPS,
                               coarse=coarse)
    assert nfe == steps and len(record) == steps
    return a, record, out


def _moments_ok(record, mean_fn, var_fn, *, rtol_var: float, atol_mean: float, skip_first: bool = True):
    for t, x in record[1 if skip_first else 0:]:
        m, var = float(x.mean()), float(x.var())
        assert abs(m - mean_fn(t)) < atol_mean, (t, m, mean_fn(t))
        assert abs(var - var_fn(t)) <= rtol_var * var_fn(t) + 1e-4, (t, var, var_fn(t))


def test_bridge_sampler_at_fine_scales_has_eq1_marginals_and_returns_x0():
    b = -0.4
    a, record, out = _run("bridge", b, steps=20)
    _moments_ok(record, lambda t: (1 - t) * a + t * b, lambda t: SIGMA**2 * t * (1 - t), rtol_var=0.05, atol_mean=0.01)
    torch.testing.assert_close(out, torch.full_like(out, a))


@pytest.mark.parametrize("kind,steps", [("bridge", 20), ("ode", 400), ("sde", 400)])
def test_coarse_scale_samplers_reach_the_gaussian_marginals(kind, steps):
    a, record, out = _run(kind, None, steps=steps)
    mean = lambda t: (1 - t) * a
    var = lambda t: float(gaussian_std(torch.tensor(t, dtype=torch.float64), SIGMA)) ** 2
    _moments_ok(record[:: max(1, steps // 20)], mean, var, rtol_var=0.08, atol_mean=0.02, skip_first=False)
    if kind in ("bridge", "sde"):
        torch.testing.assert_close(out, torch.full_like(out, a))  # the last step returns x0_hat
    else:
        assert abs(float(out.mean()) - a) < 0.02 and float(out.std()) < 0.05


@pytest.mark.parametrize("kind", ["ode", "sde"])
def test_ode_and_sde_at_fine_scales_stay_on_eq1_marginals(kind):
    # Started from eq. 1's marginal at t0 = 0.9 (from t = 1 the marginal is a point mass, which no
    # Euler step with the diffusion at its left end can spread: that is what the bridge step is for).
    b = -0.4
    a, record, out = _run(kind, b, steps=400, t0=0.9)
    _moments_ok(record[::20], lambda t: (1 - t) * a + t * b, lambda t: SIGMA**2 * t * (1 - t), rtol_var=0.1,
                atol_mean=0.01, skip_first=False)
    assert abs(float(out.mean()) - a) < 0.01 and float(out.std()) < 0.02


def test_published_em_without_the_score_term_leaves_grain():
    # The reason `em` is not the default: with x0 a point mass the clean image is exact, but eq. 4's
    # noise is never taken back out (no score term): the result keeps a std of ~0.02 (sigma = 0.35).
    a, _, out = _run("em", -0.4, steps=100)
    assert abs(float(out.mean()) - a) < 0.01 and float(out.std()) > 0.01
    _, _, out_sde = _run("sde", -0.4, steps=100)
    assert float(out_sde.std()) < 1e-6


def test_bridge_coarse_ode_option_uses_the_ode_at_scale_0():
    a, rec_ode, out_ode = _run("ode", None, steps=10)
    a, rec_b, out_b = _run("bridge", None, steps=10, coarse="ode")
    torch.testing.assert_close(out_b, out_ode)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_per_sample_deterministic_and_counts_nfe(kind):
    sizes = [(8, 8), (11, 11)]
    v = lambda x, t, s: 0.3 * x
    out = sample_pyramid(v, sizes, 1, generators_for([0, 1, 2]), steps=4, kind=kind, keep_intermediates=True)
    assert out.samples.shape == (3, 1, 11, 11) and out.nfe == 8 and len(out.intermediates) == 2
    alone = sample_pyramid(v, sizes, 1, generators_for([2]), steps=4, kind=kind)
    torch.testing.assert_close(alone.samples[0], out.samples[2], rtol=0, atol=0)
    assert torch.isfinite(out.samples).all()


def test_unknown_kind_is_one_clear_error():
    from sinsemi.generators.params import parse_sampler

    with pytest.raises(InputError, match="sampler.kind must be one of"):
        parse_sampler("sinsemi", {"kind": "heun"})
    with pytest.raises(InputError, match="sampler.coarse must be one of"):
        parse_sampler("sinsemi", {"coarse": "x"})
    with pytest.raises(AssertionError):  # the maths only asserts
        sample_pyramid(lambda x, t, s: x, [(4, 4)], 1, generators_for([0]), steps=2, kind="heun")


def test_start_scale_refines_a_given_coarse_image_only():
    from sinsemi.flow.sampler import resize

    sizes = [(8, 8), (11, 11), (15, 15)]
    coarse = torch.rand(2, 1, 11, 11)
    # v = 0: the ODE keeps its start, so the output is the start upsampled scale by scale
    out = sample_pyramid(lambda x, t, s: torch.zeros_like(x), sizes, 1, generators_for([0, 1]), steps=3, kind="ode",
                         start_scale=2, start=coarse)
    torch.testing.assert_close(out.samples, resize(coarse, (15, 15)))
    assert out.nfe == 3  # one scale run
    seen = []
    sample_pyramid(lambda x, t, s: seen.append(s) or 0.1 * x, sizes, 1, generators_for([0, 1]), steps=2, kind="bridge",
                   start_scale=1, start=torch.rand(2, 1, 8, 8))
    assert sorted(set(seen)) == [1, 2]
    with pytest.raises(ValueError, match="start_scale"):
        sample_pyramid(lambda x, t, s: x, sizes, 1, generators_for([0]), steps=2, start_scale=1)
