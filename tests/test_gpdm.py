"""GPDM: pyramid rule, the patch sliced Wasserstein loss, its optimiser, and sampling."""

from __future__ import annotations

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.generators.gpdm import GPDM, _pad_to_length, adam_step, gpdm_pyramid_sizes, patch_swd, random_directions, sort_rows
from sinsemi.generators.gpnn import GPNN

TINY = {"coarse_size": 14}
FAST = {"steps_per_level": 6, "lr": 0.05}


def test_pyramid_sizes_follow_the_official_rule():
    sizes = gpdm_pyramid_sizes(96, 96, factor=0.85, coarse_size=21, patch_size=7)
    assert [h for h, _ in sizes] == [19, 23, 28, 34, 40, 48, 57, 68, 81, 96]
    assert gpdm_pyramid_sizes(32, 32, factor=0.85, coarse_size=14, patch_size=7)[0] == (12, 12)
    assert gpdm_pyramid_sizes(40, 80, factor=0.85, coarse_size=21, patch_size=7)[:2] == [(19, 38), (23, 46)]
    with pytest.raises(InputError, match="gpdm.*too small"):
        gpdm_pyramid_sizes(6, 6, factor=0.85, coarse_size=21, patch_size=7)  # one 6-px level < a 7x7 patch
    with pytest.raises(InputError, match="gpdm.*too small"):
        gpdm_pyramid_sizes(32, 32, factor=0.5, coarse_size=5, patch_size=7)  # 32 -> 16 -> 8 -> 4


def test_sort_rows_matches_torch_sort_with_gradients():
    v = torch.randn(4, 50, requires_grad=True)
    w = torch.randn(4, 50)
    (sort_rows(v) * w).sum().backward()
    g1 = v.grad.clone()
    v.grad = None
    (v.sort(dim=1).values * w).sum().backward()
    torch.testing.assert_close(g1, v.grad)
    torch.testing.assert_close(sort_rows(v.detach()), v.detach().sort(dim=1).values)


def test_pad_to_length_keeps_every_column():
    g = torch.Generator().manual_seed(0)
    p = torch.arange(10.0)[None]
    out = _pad_to_length(p, 25, g)
    assert out.shape == (1, 25) and set(out[0].tolist()) == set(range(10))


def test_patch_swd_is_zero_on_equal_patch_sets_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 20, 20, generator=g)
    w = random_directions(16, 49, g, "cpu")
    assert torch.allclose(w.norm(dim=1), torch.ones(16))
    assert patch_swd(x, x, w, g) == 0
    assert patch_swd(x + 0.1, x, w, g) > 0.05
    # unequal patch counts (a larger output) still compare
    assert torch.isfinite(patch_swd(torch.rand(1, 1, 26, 26, generator=g), x, w, g))


def test_adam_step_is_torch_adam():
    y0 = torch.randn(6)
    p = y0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.05)
    y, m, v = y0.clone(), torch.zeros(6), torch.zeros(6)
    for t in range(1, 5):
        grad = torch.randn(6, generator=torch.Generator().manual_seed(t))
        p.grad = grad.clone()
        opt.step()
        y = adam_step(y, grad, m, v, t, 0.05)
    torch.testing.assert_close(y, p.detach())


@pytest.fixture
def fitted(tiny_image) -> GPDM:
    gen = GPDM(**TINY)
    gen.fit(tiny_image, seed=0)
    return gen


def test_optimisation_matches_the_patch_distribution(fitted, tiny_image):
    # with steps, the output's patches move from the init noise to the image's patch distribution
    g = torch.Generator().manual_seed(9)
    w = random_directions(64, 49, g, "cpu")
    target = fitted.range_map.forward(tiny_image)[None]
    swd = {s: float(patch_swd(fitted.range_map.forward(fitted.sample([0], steps_per_level=s, lr=0.05).samples), target, w, g))
           for s in (0, 10)}
    assert swd[10] < 0.5 * swd[0], swd


def test_samples_are_per_seed_diverse_and_in_range(fitted, tiny_image):
    x = fitted.sample([5, 6, 7], **FAST).samples
    assert x.shape == (3, *tiny_image.shape) and x.dtype == torch.float32
    # outputs are clipped to the working range, i.e. the image's [min, max]
    assert x.min() >= tiny_image.min() - 1e-5 and x.max() <= tiny_image.max() + 1e-5
    torch.testing.assert_close(fitted.sample([6], **FAST).samples[0], x[1])
    assert (x[0] - x[1]).abs().mean() > 0.01


def test_save_load_round_trip_and_wrong_checkpoint(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    again = GPDM.load(tmp_path / "m")
    assert again.params == fitted.params
    torch.testing.assert_close(again.sample([3], **FAST).samples, fitted.sample([3], **FAST).samples)
    with pytest.raises(InputError, match="'gpdm' generator, not a 'gpnn'"):
        GPNN.load(tmp_path / "m")


def test_lr_decays_by_0_9_per_level_as_official(fitted, monkeypatch):
    """ariel415el/GPDM GPDM.py generate: ``lr *= 0.9`` after every pyramid level (lr_decay=1: constant)."""
    import inspect

    import sinsemi.generators.gpdm as gpdm_mod

    assert inspect.signature(GPDM.sample).parameters["lr_decay"].default == 0.9
    seen = []
    real = gpdm_mod.adam_step
    monkeypatch.setattr(gpdm_mod, "adam_step", lambda y, grad, m, v, t, lr: (seen.append(lr), real(y, grad, m, v, t, lr))[1])
    fitted.sample([0], steps_per_level=1, lr=0.05)
    assert seen == pytest.approx([0.05 * 0.9**k for k in range(len(fitted.levels))])
    seen.clear()
    fitted.sample([0], steps_per_level=1, lr=0.05, lr_decay=1.0)
    assert seen == pytest.approx([0.05] * len(fitted.levels))


def test_bad_requests(fitted, tiny_image):
    with pytest.raises(InputError, match="positive"):
        fitted.sample([])
    with pytest.raises(InputError, match="unknown sampler setting"):
        fitted.sample([0], iters_per_level=3)
    with pytest.raises(InputError, match="num_projections"):
        fitted.sample([0], num_projections=0)
    with pytest.raises(InputError, match="not fitted"):
        GPDM().sample([0])
    with pytest.raises(InputError, match="gpdm.*too small"):
        GPDM(coarse_size=21).fit(tiny_image[:, :6, :6], seed=0)
