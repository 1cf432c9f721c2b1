"""Pyramid sizes and level shapes (SinDDM/SinSEMI rule)."""

from __future__ import annotations

import pytest
import torch

from sinsemi.data import pyramid_sizes
from sinsemi.data.pyramid import build_pyramid, resize
from sinsemi.errors import InputError


def test_96_square_at_1_4():
    assert [h for h, _ in pyramid_sizes(96, 96, 1.4)] == [55, 73, 96]
    assert pyramid_sizes(96, 96, 1.4) == [(55, 55), (73, 73), (96, 96)]


@pytest.mark.parametrize("hw", [(96, 160), (160, 96), (64, 250), (120, 121)])
def test_non_square_round_trip_shapes(hw):
    h, w = hw
    sizes = pyramid_sizes(h, w, 1.4)
    assert sizes[-1] == (h, w)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(sizes, sizes[1:]))
    short = [min(s) for s in sizes]
    assert 42 <= short[0] <= 55 or len(sizes) == 1
    for s in sizes:  # aspect ratio kept
        assert abs(s[0] / s[1] - h / w) < 0.05
    img = torch.rand(1, h, w)
    pyr = build_pyramid(img, sizes)
    assert pyr.sizes == sizes and pyr.n_scales == len(sizes)
    assert torch.equal(pyr.levels[-1], img)
    assert pyr.conditions[0] is None
    for s in range(1, len(sizes)):
        assert tuple(pyr.conditions[s].shape) == (1, *sizes[s])
    # resize to a level and back gives the original shape (batched too)
    back = resize(resize(img[None], sizes[0]), (h, w))
    assert back.shape == (1, 1, h, w)


def test_image_smaller_than_coarsest_level():
    with pytest.raises(InputError, match="smaller than the coarsest"):
        pyramid_sizes(30, 96, 1.4)


def test_bad_scale_factor():
    with pytest.raises(InputError):
        pyramid_sizes(96, 96, 1.0)


def test_build_pyramid_checks_its_input():
    with pytest.raises(InputError):
        build_pyramid(torch.rand(96, 96), [(55, 55), (96, 96)])
    with pytest.raises(InputError):
        build_pyramid(torch.rand(1, 96, 96), [(55, 55), (73, 73)])
