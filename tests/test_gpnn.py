"""GPNN and the shared patch ops: pyramid rule, fold/unfold, (normalised) NN search, sampling."""

from __future__ import annotations

from importlib.resources import files
import os
import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.generators.common.patches import (RangeMap, extract_patches, fold_patches, nearest_neighbours,
                                               normalized_nearest_neighbours)
from sinsemi.generators.gpdm import GPDM
from sinsemi.generators.gpnn import GPNN, gpnn_pyramid_sizes, pnn

CONF = str(files("sinsemi.conf"))

TINY = {"levels": 4, "min_size": 14}


def _brute_scores(q, k, alpha=None):
    d = torch.cdist(q.double(), k.double()).pow(2) / q.shape[1]
    if alpha is not None:
        d = d / (alpha + d.min(dim=0).values[None, :])
    return d


# ----------------------------------------------------------------------------- patch ops
def test_pyramid_sizes_follow_the_official_rule_and_cap_at_min_size():
    assert gpnn_pyramid_sizes(96, 96, levels=5, ratio=0.75, min_size=14) == [(31, 31), (41, 41), (54, 54), (72, 72), (96, 96)]
    capped = gpnn_pyramid_sizes(96, 96, levels=9, ratio=0.75, min_size=14)
    assert capped[0] == (18, 18) and len(capped) == 7  # ceil(96 * .75^7) = 13 < 14: dropped
    assert gpnn_pyramid_sizes(96, 64, levels=3, ratio=0.75, min_size=14)[0] == (54, 36)
    with pytest.raises(InputError, match="gpnn.*too small"):
        gpnn_pyramid_sizes(12, 40, levels=5, ratio=0.75, min_size=14)


def test_fold_of_unfold_is_identity_for_any_weighting():
    x = torch.rand(2, 3, 11, 13)
    for std in (1.7, 0.5, None):
        torch.testing.assert_close(fold_patches(extract_patches(x, 5), (11, 13), 5, weight_std=std), x)


def test_fold_weights_centres_more_than_corners():
    # one patch of ones at the top-left, zeros elsewhere: the weighted mean at pixel (0, 0) is 1
    # (only that patch covers it); at (4, 4) the patch contributes its corner weight among others.
    p = torch.zeros(1, 9, 25)  # a 7x7 image has 9 patches of 5x5
    p[0, 0] = 1.0
    out = fold_patches(p, (7, 7), 5)
    assert out[0, 0, 0, 0] == 1.0 and 0.0 < out[0, 0, 4, 4] < 1.0 / 9 + 1e-6  # its corner weight is the smallest


@pytest.mark.parametrize("max_elements", [1 << 20, 37])
def test_nearest_neighbours_match_brute_force(max_elements):
    g = torch.Generator().manual_seed(0)
    q, k = torch.rand(200, 27, generator=g), torch.rand(150, 27, generator=g)
    nn_ = nearest_neighbours(q, k, max_elements=max_elements)
    d = _brute_scores(q, k)
    assert torch.equal(nn_.indices, d.argmin(1))
    torch.testing.assert_close(nn_.distances.double(), d.min(1).values, atol=1e-6, rtol=1e-5)


def test_normalized_search_is_eq2_and_alpha_inf_is_plain_nn():
    g = torch.Generator().manual_seed(1)
    q, k = torch.rand(120, 49, generator=g), torch.rand(90, 49, generator=g)
    s = _brute_scores(q, k, alpha=5e-3)
    nn_ = normalized_nearest_neighbours(q, k, 5e-3, max_elements=100)
    assert torch.equal(nn_.indices, s.argmin(1))
    assert torch.equal(normalized_nearest_neighbours(q, k, float("inf")).indices, nearest_neighbours(q, k).indices)
    # normalisation spreads the choices: at least as many distinct keys are used
    assert nn_.indices.unique().numel() >= nearest_neighbours(q, k).indices.unique().numel()


def test_pnn_of_an_image_onto_itself_returns_it():
    x = torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(pnn(x, x, x, patch_size=7, alpha=5e-3), x)


def test_range_map_round_trip_and_modes():
    x = 0.2 + 0.1 * torch.rand(2, 8, 8)
    m = RangeMap.fit(x, "minmax", -1.0, 1.0)
    y = m.forward(x)
    assert torch.isclose(y.amin(), torch.tensor(-1.0)) and torch.isclose(y.amax(), torch.tensor(1.0))
    torch.testing.assert_close(m.inverse(y), x)
    torch.testing.assert_close(RangeMap.fit(x, "raw", -1.0, 1.0).forward(x), 2 * x - 1)
    with pytest.raises(InputError, match="intensity"):
        RangeMap.fit(x, "zscore", 0.0, 1.0)


# ----------------------------------------------------------------------------- the generator
@pytest.fixture
def fitted(tiny_image) -> GPNN:
    gen = GPNN(**TINY)
    gen.fit(tiny_image, seed=0)
    return gen


def test_without_noise_one_pass_per_level_reconstructs_the_image(fitted, tiny_image):
    # sigma = 0: every query patch equals its own key, so each level returns the real level.
    out = fitted.sample([0], noise_std=0.0, iters_per_level=1).samples
    torch.testing.assert_close(out[0], tiny_image, atol=1e-4, rtol=0)


def test_samples_are_per_seed_diverse_and_in_range(fitted, tiny_image):
    x = fitted.sample([5, 6, 7], iters_per_level=2).samples
    assert x.shape == (3, *tiny_image.shape) and x.dtype == torch.float32
    # values are weighted means of real patches: inside the image's range
    assert x.min() >= tiny_image.min() - 1e-5 and x.max() <= tiny_image.max() + 1e-5
    torch.testing.assert_close(fitted.sample([6], iters_per_level=2).samples[0], x[1])
    assert (x[0] - x[1]).abs().mean() > 0.01


def test_save_load_round_trip_and_wrong_checkpoint(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    again = GPNN.load(tmp_path / "m")
    assert again.params == fitted.params
    torch.testing.assert_close(again.sample([3], iters_per_level=1).samples, fitted.sample([3], iters_per_level=1).samples)
    with pytest.raises(InputError, match="'gpnn' generator, not a 'gpdm'"):
        GPDM.load(tmp_path / "m")


def test_defaults_are_the_official_generation_recipe():
    """WeizmannVision/DropTheGAN main.py generation / applications.py image_generation / gpnn.py gpnn:
    alpha = inf, 7x7 patches, 9 downscales at 0.75, 10 passes per level and 1 at the coarsest, noise
    0.75 on raw [0, 1] intensities; the same in conf/generator/gpnn.yaml + conf/sampler/gpnn.yaml."""
    import inspect

    import yaml


    gen = GPNN()
    assert {k: gen.params[k] for k in ("patch_size", "downscale_ratio", "levels", "intensity")} == {
        "patch_size": 7, "downscale_ratio": 0.75, "levels": 10, "intensity": "raw"}
    defaults = {k: v.default for k, v in inspect.signature(GPNN.sample).parameters.items()
                if v.default is not inspect.Parameter.empty}
    assert defaults == {"noise_std": 0.75, "alpha": None, "iters_per_level": 10, "coarsest_iters": 1}
    conf = yaml.safe_load(open(f"{CONF}/generator/gpnn.yaml"))
    assert all(conf[k] == v for k, v in gen.params.items())
    assert yaml.safe_load(open(f"{CONF}/sampler/gpnn.yaml")) == defaults
    assert not os.path.exists(f"{CONF}/generator_profile/gpnn/paper.yaml")  # paper = the official defaults above
    # 96 px: the image and 9 downscales, an 8-px coarsest level (ceil(96 * 0.75^9) = 8)
    sizes = gpnn_pyramid_sizes(96, 96, levels=gen.params["levels"], ratio=0.75, min_size=gen.params["min_size"])
    assert len(sizes) == 10 and sizes[0] == (8, 8) and sizes[-1] == (96, 96)
    # raw intensities: the working scale is the image itself (no stretch)
    x = 0.2 + 0.1 * torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0))
    gen.fit(x, seed=0)
    torch.testing.assert_close(gen.levels[-1], x)


def test_retarget_variant_is_the_earlier_setting(tiny_image):
    from sinsemi.generators.gpnn import RETARGET

    gen = GPNN(**RETARGET["generator"])
    gen.fit(tiny_image, seed=0)
    assert len(gen.levels) == 4 and min(gen.levels[0].shape[-2:]) >= 14  # 32 px: 14, 18, 24, 32
    assert gen.levels[-1].amin().item() == pytest.approx(0.0, abs=1e-6) and gen.levels[-1].amax().item() == pytest.approx(1.0)
    a = gen.sample([1], iters_per_level=1, **RETARGET["sampler"]).samples
    b = gen.sample([1], iters_per_level=1).samples  # alpha = inf: another nearest-neighbour choice
    assert a.shape == (1, *tiny_image.shape) and not torch.equal(a, b)


def test_bad_requests(fitted, tiny_image):
    with pytest.raises(InputError, match="positive"):
        fitted.sample([])
    with pytest.raises(InputError, match="one per sample"):
        fitted.sample(2)
    with pytest.raises(InputError, match="unknown sampler setting"):
        fitted.sample([0], steps=3)
    with pytest.raises(InputError, match="not fitted"):
        GPNN().sample([0])
    with pytest.raises(InputError, match="gpnn.*too small"):
        GPNN(min_size=14).fit(tiny_image[:, :10, :10], seed=0)
    with pytest.raises(InputError, match="constant"):
        GPNN().fit(torch.full((1, 32, 32), 0.5), seed=0)
