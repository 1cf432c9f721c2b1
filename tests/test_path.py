"""Eq. 1-2: the bridge sample and its CFM target against closed forms."""

import torch

from sinsemi.flow.path import bridge_point, target_factor


def _draw(n=64, shape=(1, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    x0, x1, z = (torch.randn(n, *shape, generator=g) for _ in range(3))
    return x0, x1, z


def test_path_and_target_closed_forms():
    x0, x1, z = _draw()
    t = torch.linspace(0.02, 0.98, 64)
    p = bridge_point(x0, x1, t, z, sigma=0.35, eps=0.01)
    tb = t.view(-1, 1, 1, 1)
    mu = (1 - tb) * x0 + tb * x1
    torch.testing.assert_close(p.mu_t, mu)
    torch.testing.assert_close(p.x_t, mu + 0.35 * torch.sqrt(tb * (1 - tb)) * z)
    torch.testing.assert_close(p.u_t, x1 - x0 + 0.35 * z * (1 - 2 * tb) / (2 * torch.sqrt(tb * (1 - tb))))


def test_target_equals_torchcfm_conditional_expectation():
    # Given (x0, x1) and x_t, the target is determined: E[u_t | x_t, x0, x1] = torchcfm's form.
    x0, x1, z = _draw(seed=1)
    t = torch.rand(64, generator=torch.Generator().manual_seed(2)) * 0.96 + 0.02
    p = bridge_point(x0, x1, t, z, sigma=0.35, eps=0.01)
    tb = t.view(-1, 1, 1, 1)
    torchcfm = (1 - 2 * tb) / (2 * tb * (1 - tb)) * (p.x_t - p.mu_t) + x1 - x0
    torch.testing.assert_close(p.u_t, torchcfm, rtol=1e-4, atol=1e-4)


def test_endpoints_and_finiteness():
    x0, x1, z = _draw(n=2, seed=3)
    p0 = bridge_point(x0, x1, torch.zeros(2), z)
    p1 = bridge_point(x0, x1, torch.ones(2), z)
    torch.testing.assert_close(p0.x_t, x0)
    torch.testing.assert_close(p1.x_t, x1)
    for p in (p0, p1):
        assert torch.isfinite(p.u_t).all()


def test_sign_near_the_ends_is_kept():
    # (1 - 2t) > 0 near t = 0 and < 0 near t = 1: the clamped factor keeps that sign
    # (the published code clipped both ends to +2, which is wrong near t = 1).
    t = torch.tensor([0.0, 1e-9, 1e-3, 0.3, 0.5, 0.7, 1 - 1e-3, 1 - 1e-9, 1.0])
    f = target_factor(t, eps=0.01)
    assert torch.isfinite(f).all()
    assert (f[:4] > 0).all() and f[4] == 0 and (f[5:] < 0).all()
    torch.testing.assert_close(f[0], -f[-1])
    # the noise part of u_t points against z near t = 1
    x0, x1, z = _draw(n=3, seed=4)
    p = bridge_point(x0, x1, torch.full((3,), 1 - 1e-6), z)
    noise_part = p.u_t - (x1 - x0)
    assert (noise_part * z <= 0).all() and (noise_part * z < 0).any()


def test_marginal_variance_matches_eq1():
    n = 20000
    g = torch.Generator().manual_seed(5)
    x0, x1 = torch.zeros(n, 1, 1, 1), torch.ones(n, 1, 1, 1)
    z = torch.randn(n, 1, 1, 1, generator=g)
    p = bridge_point(x0, x1, torch.full((n,), 0.3), z, sigma=0.35)
    assert abs(p.x_t.mean().item() - 0.3) < 0.01
    assert abs(p.x_t.var().item() - 0.35**2 * 0.21) < 0.002
