"""ConSinGAN: rescaling, growing generator sizes, concurrent training, fit/save/load/sample, resume."""

from __future__ import annotations

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, build_generator, write_model
from sinsemi.generators.consingan import ConSinGAN, Critic, GrowingGenerator, consingan_sizes
from tests._interrupt import Interrupt, Stop

TINY = dict(train_stages=3, min_size=16, nfc=8, niter=4)  # 3 stages 16, 23, 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These nets are tiny: a second OpenMP thread only adds spin-waiting on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_rescaling_packs_stages_at_low_resolution():
    assert consingan_sizes(96, 96) == [(25, 25), (30, 30), (36, 36), (47, 47), (74, 74), (96, 96)]
    sizes = consingan_sizes(96, 128)
    assert sizes[0][0] == 25 and sizes[-1] == (96, 128) and len(sizes) == 6
    assert consingan_sizes(32, 32, min_size=16, train_stages=3) == [(16, 16), (23, 23), (32, 32)]
    assert consingan_sizes(50, 50, min_size=25, train_stages=2) == [(25, 25), (50, 50)]


def test_growing_generator_and_critic_sizes():
    sizes = [(25, 25), (30, 30), (36, 36)]
    g = GrowingGenerator(2, nfc=8, num_layer=3, stages=3)
    assert len(g.body) == 3
    noise = [torch.randn(1, 2, 25, 25)] + [torch.randn(1, 8, h + 6, w + 6) for h, w in sizes[1:]]
    out = g(noise, sizes, [1.0, 0.1, 0.1])
    assert out.shape == (1, 2, 36, 36) and out.abs().max() <= 1
    assert GrowingGenerator(2, nfc=8, num_layer=3)(noise[:1], sizes, [1.0]).shape == (1, 2, 25, 25)
    # a new stage starts as a copy of the top one
    g.grow()
    assert torch.equal(g.body[3][0][0].weight, g.body[2][0][0].weight)
    assert Critic(2, nfc=8, num_layer=3)(torch.randn(1, 2, 36, 36)).shape == (1, 1, 26, 26)


def _tiny_image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(32).float()
    img = (0.5 + 0.2 * torch.cos(2 * torch.pi * x / 10))[None, None, :].expand(1, 32, 32).clone()
    img[:, 14:18, 12:20] = 0.3
    return (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    img = _tiny_image()
    gen = ConSinGAN(runtime=Runtime(progress=False, checkpoint_every=0), **TINY)
    gen.fit(img, seed=3, out_dir=tmp_path_factory.mktemp("consingan"))
    return gen, img


def test_learning_rates_and_frozen_stages(fitted):
    gen, _ = fitted
    gen.G.grow()  # pretend a 4th stage: only the top 3 stages (lr 5e-6, 5e-5, 5e-4) and the tail train
    try:
        opt, lrs = gen._optimizer_g(stage=3)
        assert lrs == pytest.approx([5e-6, 5e-5, 5e-4, 5e-4])
        assert not any(p.requires_grad for p in gen.G.body[0].parameters())
        assert not any(p.requires_grad for p in gen.G.head.parameters())
        opt, lrs = gen._optimizer_g(stage=1)  # below train_depth the head trains at lr * 0.1^stage
        assert lrs[-2] == pytest.approx(5e-5) and all(p.requires_grad for p in gen.G.head.parameters())
    finally:
        del gen.G.body[3]
        for p in gen.G.parameters():
            p.requires_grad_(False)


def test_fit_save_load_sample(fitted, tmp_path):
    gen, img = fitted
    assert gen.sizes == [(16, 16), (23, 23), (32, 32)] and len(gen.G.body) == 3
    assert gen.noise_amps[0] == 1.0 and all(a > 0 for a in gen.noise_amps)
    s = gen.sample([0, 1, 2]).samples
    assert s.shape == (3, 1, 32, 32) and s.dtype == torch.float32
    assert s.min() >= img.min() - 1e-6 and s.max() <= img.max() + 1e-6
    assert not torch.equal(s[0], s[1]) and not torch.allclose(s[0], img, atol=1e-3)
    assert torch.equal(gen.sample([2]).samples[0], s[2])
    gen.save(tmp_path / "model")
    loaded = build_generator("consingan", TINY).load(tmp_path / "model", runtime=Runtime(progress=False))
    assert torch.equal(loaded.sample([0, 1, 2]).samples, s)


def test_resume_gives_the_uninterrupted_result(fitted, tmp_path):
    gen, img = fitted
    ref = gen.sample([0, 1]).samples

    # per-stage checkpoint (killed at the start of stage 2) and mid-stage one (every 2 iterations)
    for at, it, every in [(2, 1, 0), (1, 3, 2)]:
        out = tmp_path / f"run{at}"
        with pytest.raises(Stop):
            ConSinGAN(runtime=Runtime(progress=False, log_every=1, checkpoint_every=every, logger=Interrupt("consingan", at, it, TINY["niter"])),
                      **TINY).fit(img, seed=3, out_dir=out)
        resumed = ConSinGAN(runtime=Runtime(progress=False, checkpoint_every=every), **TINY)
        resumed.fit(img, seed=3, out_dir=out)
        assert torch.equal(resumed.sample([0, 1]).samples, ref), (at, it)


def test_bad_inputs(fitted, tmp_path):
    gen, img = fitted
    with pytest.raises(InputError, match="ConSinGAN.*too small"):
        ConSinGAN(runtime=Runtime(progress=False)).fit(torch.rand(1, 24, 96), seed=0, out_dir=tmp_path)
    with pytest.raises(InputError, match="positive"):
        gen.sample([])
    with pytest.raises(InputError, match="unknown sampler settings"):
        gen.sample([0], steps=3)
    with pytest.raises(InputError, match="train_stages"):
        ConSinGAN(train_stages=1)
    write_model(tmp_path / "other", "singan", {}, {})
    with pytest.raises(InputError, match="'singan' generator, not a 'consingan'"):
        ConSinGAN.load(tmp_path / "other")
    out = tmp_path / "ck"
    ConSinGAN(runtime=Runtime(progress=False, max_steps=1), **TINY).fit(img, seed=0, out_dir=out)
    with pytest.raises(InputError, match="other settings"):
        ConSinGAN(runtime=Runtime(progress=False, max_steps=2), **TINY).fit(img, seed=0, out_dir=out)


def test_intensity_raw_is_the_official_map(tmp_path, tiny_image):
    """intensity=raw: [0, 1] -> [-1, 1] as the official ``norm``; minmax (default): the image's range."""
    x01 = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3)
    raw = ConSinGAN(runtime=Runtime(progress=False, max_steps=1), **TINY, intensity="raw")
    raw.fit(tiny_image, seed=0, out_dir=tmp_path / "raw")
    torch.testing.assert_close(raw.norm.forward(x01), torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 3))
    mm = ConSinGAN(runtime=Runtime(progress=False, max_steps=1), **TINY)
    mm.fit(tiny_image, seed=0, out_dir=tmp_path / "mm")
    y = mm.norm.forward(tiny_image)
    assert y.min().item() == pytest.approx(-1.0) and y.max().item() == pytest.approx(1.0)
    with pytest.raises(InputError, match="intensity"):
        ConSinGAN(intensity="zscore")


def test_batch_norm_is_the_official_option_in_the_generator_only(tmp_path):
    """``batch_norm: true`` (official ``--batch_norm``): BatchNorm after every generator conv (head and
    stages), none in the critic; each image is normalised with its own statistics whatever the
    module's mode (the official code never calls eval() and generates one image per call)."""
    g = GrowingGenerator(1, nfc=8, num_layer=3, stages=2, batch_norm=True)
    bns = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 2 * 3 and not any(m.track_running_stats for m in bns)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in GrowingGenerator(1, nfc=8, num_layer=3).modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in Critic(1, nfc=8, num_layer=3).modules())
    sizes = [(16, 16), (23, 23)]
    noise = [torch.randn(1, 1, 16, 16), torch.randn(1, 8, 29, 29)]
    train_out = g.train()(noise, sizes, [1.0, 0.1])
    eval_out = g.eval()(noise, sizes, [1.0, 0.1])
    assert torch.equal(train_out, eval_out)  # batch statistics in both modes
    # closed form of the head's normalisation: per channel zero mean, unit variance before the affine map
    conv, bn = g.head[0], g.head[1]
    y = conv(torch.nn.functional.pad(noise[0], (1, 1, 1, 1)))
    z = bn(y)
    ref = (y - y.mean((0, 2, 3), keepdim=True)) / torch.sqrt(y.var((0, 2, 3), unbiased=False, keepdim=True) + bn.eps)
    assert torch.allclose(z, ref * bn.weight[None, :, None, None] + bn.bias[None, :, None, None], atol=1e-5)

    img = _tiny_image()
    gen = ConSinGAN(runtime=Runtime(progress=False, checkpoint_every=0), batch_norm=True, **{**TINY, "niter": 2})
    gen.fit(img, seed=1, out_dir=tmp_path / "run")
    a = gen.sample([5, 6]).samples
    assert torch.isfinite(a).all()
    assert torch.equal(gen.sample([6]).samples[0], a[1])  # one image per call: its own statistics
    gen.save(tmp_path / "model")
    back = ConSinGAN.load(tmp_path / "model", runtime=Runtime(progress=False))
    assert back.params["batch_norm"] is True and torch.equal(back.sample([5, 6]).samples, a)
    with pytest.raises(InputError, match="batch_norm must be true or false"):
        ConSinGAN(batch_norm="yes")
