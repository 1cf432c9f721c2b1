"""SinFusion: NextNet's shapes and size, crops, and the generator contract on a tiny image."""

from __future__ import annotations

import pytest
import torch
import yaml

from sinsemi.cli._common import conf_dir
from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, build_generator, generator_class, write_model
from sinsemi.generators.sinfusion import SinFusion
from sinsemi.nets.nextnet import NextNet

NAME = "sinfusion"
_conf = yaml.safe_load(open(f"{conf_dir()}/generator/{NAME}.yaml"))
_conf.pop("name")
_tiny = yaml.safe_load(open(f"{conf_dir()}/generator_profile/{NAME}_tiny.yaml"))
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
