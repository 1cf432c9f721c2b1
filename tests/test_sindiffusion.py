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


# ----------------------------------------------------------------------------- contract (tiny profile)
globals().update(contract_tests(NAME, TINY, SAMPLER))
