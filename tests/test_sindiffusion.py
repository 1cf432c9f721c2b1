"""SinDiffusion: the patch UNet's shapes and size, and the generator contract on a tiny image."""

from __future__ import annotations

from importlib.resources import files

import pytest
import torch
import yaml

from sinsemi.errors import InputError
from tests._diffusion_contract import contract_tests
from sinsemi.generators.base import Runtime, build_generator, generator_class, write_model
from sinsemi.generators.sindiffusion import SinDiffusion
from sinsemi.nets.unet import PatchUNet, count_parameters

NAME = "sindiffusion"
CONF = files("sinsemi.conf")
_conf = yaml.safe_load((CONF / "generator" / f"{NAME}.yaml").read_text())
_conf.pop("name")
_tiny = yaml.safe_load((CONF / "generator_profile" / NAME / "tiny.yaml").read_text())
TINY = {**_conf, **_tiny["generator"]}
SAMPLER = dict(_tiny.get("sampler", {}))


def test_unet_shapes_and_size():
    net = PatchUNet(1, 64, (1, 2, 4), 1)
    # guided-diffusion layout, 64 ch, mult 1-2-4, 1 res block/level, no attention, 1 channel in/out
    assert count_parameters(net) == 6_990_593
    assert count_parameters(PatchUNet(3, 64)) == 6_992_899  # + 2 x (3x3 convs of 2 more channels)
    small = PatchUNet(1, 16, (1, 2, 4), 1)
    for hw in ((96, 96), (95, 77), (32, 32)):  # odd sizes too (fully convolutional)
        x = torch.randn(2, 1, *hw)
        assert small(x, torch.tensor([0, 999])).shape == x.shape
    # the zero-initialised output conv: eps = 0 at init (guided-diffusion)
    assert torch.equal(net(torch.randn(1, 1, 16, 16), torch.tensor([3])), torch.zeros(1, 1, 16, 16))


def _strip_groupnorm(net):
    """GroupNorm mixes statistics over the whole image; without it the gradient shows the conv
    receptive field."""
    for name, m in list(net.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, torch.nn.GroupNorm):
                setattr(m, child_name, torch.nn.Identity())
    return net


def test_receptive_field_covers_most_of_96px():
    """An output pixel sees ~100 px of input (the copying risk the issue mentions)."""
    torch.manual_seed(0)
    net = _strip_groupnorm(PatchUNet(1, 16, (1, 2, 4), 1))
    for p in net.parameters():  # undo the zero init so gradients flow
        torch.nn.init.normal_(p, std=0.05)
    x = torch.zeros(1, 1, 192, 192, requires_grad=True)
    net(x, torch.tensor([10]))[0, 0, 96, 96].backward()
    cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero().flatten()
    width = int(cols.max() - cols.min() + 1)
    assert 80 <= width <= 130, width


def test_schedule_is_linear_1000():
    g = SinDiffusion(**_conf)
    assert g.schedule.T == 1000 and abs(g.schedule.betas[-1].item() - 0.02) < 1e-12
    with pytest.raises(InputError, match="too small"):
        g.fit(torch.rand(1, 3, 3), seed=0, out_dir="/nonexistent-never-written")


def test_respaced_sampling_runs(tmp_path, tiny_image):
    gen = _fit(tmp_path, tiny_image, max_steps=2)
    assert gen.sample([0], steps=5, variance="small").samples.shape == (1, 1, 32, 32)
    with pytest.raises(InputError):
        gen.sample([0], steps=5000)


def test_random_resize_is_the_official_augmentation(tmp_path, tiny_image):
    """guided_diffusion/train_util.py TrainLoop.forward_backward: each step the batch is resized to
    round(H u) x round(W v), u, v ~ U(0.75, 1.25), floored to a multiple of 4 (default 0.25; 0: off)."""
    from sinsemi.generators.sindiffusion import random_resize_size

    assert SinDiffusion().params["random_resize"] == 0.25 and _conf["random_resize"] == 0.25
    assert random_resize_size((96, 96), (0.75, 1.25)) == (72, 120)
    assert random_resize_size((96, 80), (0.8, 1.0)) == (76, 80)  # round(76.8) = 77 -> 76
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, t):
            seen.append(tuple(x.shape[-2:]))
            return self.net(x, t)

    gen = build_generator(NAME, TINY, Runtime(progress=False, max_steps=6))
    build = gen.build
    gen.build = lambda c, size: (build(c, size), setattr(gen, "net", Spy(gen.net)))
    gen.fit(tiny_image, seed=0, out_dir=tmp_path / "a")
    assert len(set(seen)) > 1 and all(h % 4 == 0 and w % 4 == 0 and 24 <= h <= 40 and 24 <= w <= 40 for h, w in seen)
    seen.clear()
    off = build_generator(NAME, {**TINY, "random_resize": 0.0}, Runtime(progress=False, max_steps=3))
    build_off = off.build
    off.build = lambda c, size: (build_off(c, size), setattr(off, "net", Spy(off.net)))
    off.fit(tiny_image, seed=0, out_dir=tmp_path / "b")
    assert set(seen) == {(32, 32)}
    with pytest.raises(InputError, match="random_resize"):
        SinDiffusion(**{**_conf, "random_resize": 1.5})


def test_intensity_raw_is_the_official_units(tmp_path, tiny_image):
    gen = build_generator(NAME, {**TINY, "intensity": "raw"}, Runtime(progress=False, max_steps=1))
    gen.fit(tiny_image, seed=0, out_dir=tmp_path)
    torch.testing.assert_close(gen.std.forward(torch.tensor([[[0.0, 1.0]]])), torch.tensor([[[-1.0, 1.0]]]))
    assert gen.clip == (-1.0, 1.0)
    with pytest.raises(InputError, match="intensity"):
        SinDiffusion(**{**_conf, "intensity": "minmax"})


# ----------------------------------------------------------------------------- contract (tiny profile)
globals().update(contract_tests(NAME, TINY, SAMPLER))
