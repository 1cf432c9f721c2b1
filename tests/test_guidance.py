"""Eq. 5: LPIPS energy guidance (random-backbone LPIPS is allowed here: tests only)."""

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.flow.guidance import LPIPSGuidance, energy_gradient, rescale_to
from sinsemi.flow.sampler import euler_maruyama, time_grid
from sinsemi.seeding import generators_for


@pytest.fixture(scope="module")
def lpips_fn():
    from sinsemi.metrics.weights import lpips_model

    return lpips_model("alex", allow_random=True)


def _standardise(x):
    return (x - x.mean()) / x.std()


def test_rescale_to_matches_velocity_norm_per_sample():
    g = torch.randn(3, 1, 6, 6)
    v = torch.randn(3, 1, 6, 6) * torch.tensor([0.1, 1.0, 10.0]).view(-1, 1, 1, 1)
    r = rescale_to(g, v)
    torch.testing.assert_close(r.flatten(1).norm(dim=1), v.flatten(1).norm(dim=1))
    torch.testing.assert_close(r / r.flatten(1).norm(dim=1).view(-1, 1, 1, 1), g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1))


def test_zero_weight_calls_nothing():
    class Boom(torch.nn.Module):
        def forward(self, *a):
            raise AssertionError("LPIPS must not be called when w = 0")

    velocity = lambda x, t, s: x  # noqa: E731
    guide = LPIPSGuidance(Boom(), [torch.zeros(1, 4, 4)], [None], generators_for([0]), weight=0.0)
    assert guide(velocity) is velocity


def test_negative_weight_is_rejected():
    with pytest.raises(InputError, match="guidance"):
        LPIPSGuidance(torch.nn.Identity(), [torch.zeros(1, 4, 4)], [None], generators_for([0]), weight=-0.5)


def test_one_guided_step_lowers_lpips_to_the_reference(lpips_fn, tiny_image):
    ref = _standardise(tiny_image)  # (1, 32, 32), the "training image" at the only scale
    n = 4
    g = torch.Generator().manual_seed(0)
    x = ref[None] + 1.0 * torch.randn(n, *ref.shape, generator=g)
    drift = torch.randn(n, *ref.shape, generator=g)  # an arbitrary velocity, the same in both runs
    velocity = lambda x, t, s: drift  # noqa: E731
    grid = torch.tensor([0.05, 0.0], dtype=torch.float64)
    plain, _ = euler_maruyama(velocity, x, grid, generators_for(range(n)), noise=0.0)
    guide = LPIPSGuidance(lpips_fn, [ref], [None], generators_for(range(100, 100 + n)), weight=1.0)
    guided, nfe = euler_maruyama(guide(velocity), x, grid, generators_for(range(n)), noise=0.0)
    assert nfe == 1 and guide.last_energy is not None and guide.last_energy.shape == (n,)
    _, e_plain = energy_gradient(lpips_fn, plain, ref[None].expand(n, -1, -1, -1))
    _, e_guided = energy_gradient(lpips_fn, guided, ref[None].expand(n, -1, -1, -1))
    assert (e_guided < e_plain).all(), (e_guided, e_plain)


def test_reference_is_eq1_of_the_training_image(tiny_image):
    lv0, lv1 = torch.randn(1, 8, 8), _standardise(tiny_image)
    cond1 = torch.nn.functional.interpolate(lv0[None], size=(32, 32), mode="bilinear")[0]
    guide = LPIPSGuidance(torch.nn.Identity(), [lv0, lv1], [None, cond1], generators_for([0, 1]), weight=1.0, sigma=0.35)
    torch.testing.assert_close(guide.reference(0.0, 1, "cpu"), lv1[None].expand(2, -1, -1, -1))
    torch.testing.assert_close(guide.reference(1.0, 1, "cpu"), cond1[None].expand(2, -1, -1, -1))
    r = guide.reference(0.5, 1, "cpu")
    resid = (r - 0.5 * (lv1 + cond1)) / (0.35 * 0.5)  # the reference's own noise, ~N(0, 1)
    assert 0.8 < resid.std().item() < 1.2
    assert not torch.equal(r[0], r[1])  # per-sample noise
