"""SinDiffusion: the patch UNet's shapes and size, and the generator contract on a tiny image."""

from __future__ import annotations

import pytest
import torch
import yaml

from sinsemi.cli._common import conf_dir
from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, build_generator, generator_class, write_model
from sinsemi.generators.sindiffusion import SinDiffusion
from sinsemi.nets.unet import PatchUNet, count_parameters

NAME = "sindiffusion"
_conf = yaml.safe_load(open(f"{conf_dir()}/generator/{NAME}.yaml"))
_conf.pop("name")
_tiny = yaml.safe_load(open(f"{conf_dir()}/generator_profile/{NAME}_tiny.yaml"))
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
    assert gen.sample(1, seeds=[0], steps=5, variance="small").shape == (1, 1, 32, 32)
    with pytest.raises(InputError):
        gen.sample(1, seeds=[0], steps=5000)


# ----------------------------------------------------------------------------- contract (tiny profile)
@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine two threads thrash (measured ~6x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _fit(tmp_path, image, sub="run", **rt):
    gen = build_generator(NAME, TINY, Runtime(progress=False, **rt))
    gen.fit(image, seed=0, out_dir=tmp_path / sub)
    return gen


def test_fit_save_load_sample_deterministic(tmp_path, tiny_image):
    gen = _fit(tmp_path, tiny_image)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    a = gen.sample(3, seeds=[5, 6, 7], **SAMPLER)
    assert a.shape == (3, *tiny_image.shape) and a.dtype == torch.float32 and torch.isfinite(a).all()
    # in the image's own scale (clipped to its range widened by 10 % of the span)
    lo, hi = tiny_image.min().item(), tiny_image.max().item()
    assert a.min() >= lo - 0.11 * (hi - lo) - 1e-5 and a.max() <= hi + 0.11 * (hi - lo) + 1e-5
    assert torch.equal(a, gen.sample(3, seeds=[5, 6, 7], **SAMPLER))
    # sample i depends only on its seed, not on n or its position
    torch.testing.assert_close(gen.sample(1, seeds=[6], **SAMPLER)[0], a[1], rtol=1e-4, atol=1e-5)
    assert (a[0] - a[1]).abs().mean() > 1e-3  # different seeds give different samples
    gen.save(tmp_path / "model")
    loaded = generator_class(NAME).load(tmp_path / "model", runtime=Runtime(progress=False))
    assert torch.equal(loaded.sample(3, seeds=[5, 6, 7], **SAMPLER), a)
    assert loaded_meta(tmp_path / "model") == NAME


def loaded_meta(d):
    import json

    return json.loads((d / "generator.json").read_text())["name"]


class _Stop(Exception):
    pass


class _StopAt:
    def __init__(self, k):
        self.k = k

    def log_metrics(self, metrics, step):
        if step == self.k:
            raise _Stop


def test_resume_equals_uninterrupted(tmp_path, tiny_image):
    full = _fit(tmp_path, tiny_image, "full")
    with pytest.raises(_Stop):
        _fit(tmp_path, tiny_image, "cut", log_every=1, checkpoint_every=4, logger=_StopAt(6))
    resumed = _fit(tmp_path, tiny_image, "cut")
    for (k, p), q in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(p, q), k
    assert torch.equal(full.sample(2, seeds=[0, 1], **SAMPLER), resumed.sample(2, seeds=[0, 1], **SAMPLER))


def test_max_steps_overrides_budget(tmp_path, tiny_image):
    _fit(tmp_path, tiny_image, max_steps=3)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 3


def test_bad_inputs(tmp_path, tiny_image):
    gen = build_generator(NAME, TINY, Runtime(progress=False))
    with pytest.raises(InputError, match="not fitted"):
        gen.sample(1, seeds=[0])
    with pytest.raises(InputError, match="constant"):
        gen.fit(torch.full((1, 32, 32), 0.5), seed=0, out_dir=tmp_path / "c")
    gen = _fit(tmp_path, tiny_image, max_steps=2)
    for n in (0, -1):
        with pytest.raises(InputError, match="positive"):
            gen.sample(n, seeds=[])
    with pytest.raises(InputError, match="unknown sampler"):
        gen.sample(1, seeds=[0], bogus=1)
    # another generator's checkpoint
    write_model(tmp_path / "other", "gpnn", {}, {"x": torch.zeros(1)})
    with pytest.raises(InputError, match="not a '" + NAME + "'"):
        generator_class(NAME).load(tmp_path / "other")
