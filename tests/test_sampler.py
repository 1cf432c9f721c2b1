"""Eq. 4: the Euler–Maruyama loop against analytic velocity fields; per-sample seeding."""

import math

import pytest
import torch

from sinsemi.flow.sampler import euler_maruyama, sample_pyramid, time_grid
from sinsemi.seeding import generators_for


def test_time_grid():
    g = time_grid(4)
    assert g.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    for bad in (0, -3, 2.5, True):
        with pytest.raises(AssertionError):  # the maths asserts; the job validates (SinSEMISampler)
            time_grid(bad)


def test_constant_field_is_exact_and_counts_nfe():
    x = torch.randn(3, 1, 5, 5)
    c = torch.randn(1, 1, 5, 5)
    out, nfe = euler_maruyama(lambda x, t, s: c.expand_as(x), x, time_grid(7), generators_for([0, 1, 2]), noise=0.0)
    torch.testing.assert_close(out, x - c)  # integral of -c over t from 1 to 0
    assert nfe == 7


def test_linear_field_matches_discrete_and_continuous_solutions():
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    k = 200
    out, _ = euler_maruyama(lambda x, t, s: x, x, time_grid(k), generators_for([0, 1]), noise=0.0)
    torch.testing.assert_close(out, x * (1 - 1 / k) ** k)  # explicit Euler, closed form
    torch.testing.assert_close(out, x * math.exp(-1), rtol=5e-3, atol=1e-6)  # the ODE's solution


def test_time_dependent_field_uses_left_endpoints():
    # v = t: explicit Euler sums dt * t_k over t_k = 1, 1 - 1/K, ..., 1/K -> (K + 1) / (2K)
    k = 10
    x = torch.zeros(1, 1, 2, 2)
    out, _ = euler_maruyama(lambda x, t, s: t.view(-1, 1, 1, 1).expand_as(x), x, time_grid(k), generators_for([0]), noise=0.0)
    torch.testing.assert_close(out, torch.full_like(x, -(k + 1) / (2 * k)))


def test_noise_variance_matches_eq4():
    # v = 0: Var(x_end) = sum_k dt * g^2 * t_k (1 - t_k)
    k, g, n = 8, 1.0, 3000
    grid = time_grid(k)
    out, _ = euler_maruyama(lambda x, t, s: torch.zeros_like(x), torch.zeros(n, 1, 1, 1), grid,
                            generators_for(range(n)), noise=g)
    expected = sum((1 / k) * g**2 * float(t) * (1 - float(t)) for t in grid[:-1])
    assert abs(out.var().item() - expected) < 0.1 * expected


def test_pyramid_sampling_shapes_nfe_and_seeding():
    sizes = [(8, 8), (11, 11), (16, 16)]
    calls = []

    def v(x, t, s):
        calls.append((s, tuple(x.shape[-2:])))
        return 0.5 * x

    out = sample_pyramid(v, sizes, 1, generators_for([0, 1, 2]), steps=4, keep_intermediates=True)
    assert out.samples.shape == (3, 1, 16, 16)
    assert out.nfe == 12 and len(calls) == 12
    assert [c[1] for c in calls[::4]] == sizes and [c[0] for c in calls[::4]] == [0, 1, 2]
    assert [tuple(i.shape[-2:]) for i in out.intermediates] == sizes
    # sample i depends on its own seed only
    alone = sample_pyramid(lambda x, t, s: 0.5 * x, sizes, 1, generators_for([1]), steps=4)
    torch.testing.assert_close(alone.samples[0], out.samples[1], rtol=0, atol=0)
    again = sample_pyramid(lambda x, t, s: 0.5 * x, sizes, 1, generators_for([0, 1, 2]), steps=4)
    assert torch.equal(again.samples, out.samples)
