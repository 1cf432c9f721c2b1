"""SinFusion: NextNet's shapes and size, crops, and the generator contract on a tiny image."""

from __future__ import annotations

from importlib.resources import files

import pytest
import torch
import yaml

from sinsemi.errors import InputError
from tests._diffusion_contract import contract_tests
from sinsemi.generators.base import Runtime, build_generator, generator_class, write_model
from sinsemi.generators.sinfusion import SinFusion
from sinsemi.nets.nextnet import NextNet

NAME = "sinfusion"
CONF = files("sinsemi.conf")
_conf = yaml.safe_load((CONF / "generator" / f"{NAME}.yaml").read_text())
_conf.pop("name")
_tiny = yaml.safe_load((CONF / "generator_profile" / NAME / "tiny.yaml").read_text())
TINY = {**_conf, **_tiny["generator"]}
SAMPLER = dict(_tiny.get("sampler", {}))


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_nextnet_size_and_shapes():
    # the paper's 4.6 M parameters (RGB); one channel differs only in the first/last convs
    assert abs(_count(NextNet(3, 64, 16)) - 4.6e6) < 0.03 * 4.6e6
    net = NextNet(1, 64, 16)
    assert len(net.blocks) == 16
    assert isinstance(net.blocks[0].net[0], torch.nn.Identity)  # no norm in the first block
    assert all(b.depthwise.kernel_size == (7, 7) and b.depthwise.groups == b.depthwise.in_channels for b in net.blocks)
    assert all(b.net[1].out_channels == 3 * 64 for b in net.blocks)  # 3x expansion
    assert all(b.net[1].in_channels == 128 for b in net.blocks[8:])  # skip concatenation
    x = torch.randn(2, 1, 37, 50)  # no downsampling: any size
    assert net(x, torch.tensor([0, 49])).shape == x.shape
    with pytest.raises(ValueError):
        NextNet(1, 63, 16)


def test_crop_and_schedule():
    g = SinFusion(**_conf)
    g.image_size = (96, 96)
    assert g.crop_size() == (91, 91)  # 95 %
    assert g.schedule.T == 50
    with pytest.raises(InputError, match="crop_frac"):
        SinFusion(**{**_conf, "crop_frac": 1.5})
    with pytest.raises(InputError, match="too small"):
        SinFusion(**_conf).fit(torch.rand(1, 4, 4), seed=0, out_dir="/nonexistent-never-written")


def test_trains_on_x0(tmp_path, tiny_image):
    """The loss is ||x_0 - f(x_t, t)||^2: it falls well below Var(x_0) = 1 (standardised) quickly."""
    losses = []

    class _Log:
        def log_metrics(self, m, step):
            losses.append(m["train/loss"])

    gen = build_generator(NAME, {**TINY, "steps": 60, "lr": 2e-3}, Runtime(progress=False, log_every=10, logger=_Log()))
    gen.fit(tiny_image, seed=0, out_dir=tmp_path)
    assert losses[-1] < 0.5 * losses[0]


def test_sampling_schedule_follows_the_official_sample_script(tmp_path, tiny_image):
    """sample.py generate_diverse_samples reloads the net with noise_schedule='linear' (trained with
    cosine): the default sampler schedule is linear; cosine is the option."""
    import inspect

    assert inspect.signature(SinFusion._sample_batch).parameters["schedule"].default == "linear"
    assert yaml.safe_load(open(f"{CONF}/sampler/{NAME}.yaml"))["schedule"] == "linear"
    g = SinFusion(**_conf)
    lin = g.sampling_schedule("linear").betas
    # Ho et al.'s betas rescaled to 50 steps (diffusion/diffusion_utils.py linear_noise_schedule)
    torch.testing.assert_close(lin, torch.linspace(20 * 1e-4, 20 * 0.02, 50, dtype=torch.float64))
    assert g.sampling_schedule("cosine") is g.schedule
    gen = build_generator(NAME, TINY, Runtime(progress=False, max_steps=2))
    gen.fit(tiny_image, seed=0, out_dir=tmp_path)
    a = gen.sample([0], **{**SAMPLER, "schedule": "linear"}).samples
    assert torch.equal(a, gen.sample([0], **{k: v for k, v in SAMPLER.items() if k != "schedule"}).samples)
    assert not torch.equal(a, gen.sample([0], **{**SAMPLER, "schedule": "cosine"}).samples)
    with pytest.raises(InputError, match="schedule"):
        gen.sample([0], schedule="sigmoid")


def test_intensity_raw_is_the_official_units(tmp_path, tiny_image):
    gen = build_generator(NAME, {**TINY, "intensity": "raw"}, Runtime(progress=False, max_steps=1))
    gen.fit(tiny_image, seed=0, out_dir=tmp_path)
    torch.testing.assert_close(gen.std.forward(torch.tensor([[[0.0, 1.0]]])), torch.tensor([[[-1.0, 1.0]]]))
    assert gen.clip == (-1.0, 1.0)
    with pytest.raises(InputError, match="intensity"):
        SinFusion(**{**_conf, "intensity": "minmax"})


# ----------------------------------------------------------------------------- contract (tiny profile)
globals().update(contract_tests(NAME, TINY, SAMPLER))
