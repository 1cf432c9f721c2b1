"""SinGAN: pyramid and width rules, network sizes, WGAN-GP, fit/save/load/sample, resume, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, build_generator
from sinsemi.generators.common.gan import gradient_penalty, make_generator
from sinsemi.generators.singan import ScaleCritic, ScaleGenerator, SinGAN, singan_sizes, singan_widths
from tests._interrupt import Interrupt, Stop

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These nets are tiny: a second OpenMP thread only adds spin-waiting on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(min_size=16, nfc_init=8, nfc_max=8, niter=4)  # 5 scales 16..32


def test_pyramid_96_has_seven_scales_25_to_96():
    assert singan_sizes(96, 96) == [(25, 25), (32, 32), (40, 40), (49, 49), (62, 62), (77, 77), (96, 96)]
    # non-square: the short side reaches min_size, the long side keeps the aspect ratio
    sizes = singan_sizes(96, 128)
    assert sizes[0][0] == 25 and sizes[-1] == (96, 128)
    assert all(h < w for h, w in sizes)
    assert singan_sizes(32, 32, min_size=16) == [(16, 16), (20, 20), (23, 23), (27, 27), (32, 32)]


def test_width_schedule():
    assert singan_widths(7) == [32, 32, 32, 32, 64, 64, 64]
    assert singan_widths(14)[8:] == [128] * 6
    assert singan_widths(5, nfc_init=16, nfc_max=32) == [16, 16, 16, 16, 32]


@pytest.mark.parametrize("size,channels", [(25, 1), (40, 3)])
def test_generator_and_critic_sizes_follow_the_padding_rule(size, channels):
    g, d = ScaleGenerator(channels, 8, num_layer=5), ScaleCritic(channels, 8, num_layer=5)
    z = torch.randn(2, channels, size + 10, size + 10)  # input zero-padded by 5 on each side
    out = g(z, torch.zeros_like(z))
    assert out.shape == (2, channels, size, size)
    assert d(out).shape == (2, 1, size - 10, size - 10)
    # residual: with a zero body output the padded prev comes back cropped
    prev = torch.randn(1, channels, size + 10, size + 10)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
                m.bias.zero_()
    assert torch.allclose(g(z[:1], prev), prev[..., 5:-5, 5:-5])


def test_gradient_penalty_closed_form():
    torch.manual_seed(0)
    real, fake = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    # linear 1x1 critic: the input gradient at each pixel is w, whatever the interpolation point
    lin = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([2.0, -1.0, 2.0]).view(1, 3, 1, 1))
    gp = gradient_penalty(lin, real, fake, 0.1, generator=make_generator(1, "cpu"))
    assert gp.item() == pytest.approx(0.1 * (3.0 - 1.0) ** 2, rel=1e-6)
    # quadratic critic sum(x^2)/2: gradient = x_hat = a real + (1 - a) fake, a from the generator
    gp = gradient_penalty(lambda x: 0.5 * (x**2).sum(1, keepdim=True), real, fake, 0.5, generator=make_generator(7, "cpu"))
    a = torch.rand((), generator=make_generator(7, "cpu"))
    x_hat = a * real + (1 - a) * fake
    expected = 0.5 * ((x_hat.norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)
    # it back-propagates into the critic's weights
    gp = gradient_penalty(lin, real, fake, 0.1)
    gp.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One tiny fit shared by the tests below (same image as conftest's tiny_image)."""
    g = torch.Generator().manual_seed(0)
    x = torch.arange(32).float()
    img = (0.5 + 0.2 * torch.cos(2 * torch.pi * x / 10))[None, None, :].expand(1, 32, 32).clone()
    img[:, 14:18, 12:20] = 0.3
    img = (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    out = tmp_path_factory.mktemp("singan")
    gen = SinGAN(runtime=Runtime(progress=False, checkpoint_every=0), **TINY)
    gen.fit(img, seed=3, out_dir=out)
    return gen, img, out


def test_fit_save_load_sample(fitted, tmp_path):
    gen, img, out = fitted
    assert gen.sizes == [(16, 16), (20, 20), (23, 23), (27, 27), (32, 32)]
    assert len(gen.generators) == 5 and gen.noise_amps[0] == 1.0 and all(a > 0 for a in gen.noise_amps)
    s = gen.sample([0, 1, 2]).samples
    assert s.shape == (3, 1, 32, 32) and s.dtype == torch.float32
    assert s.min() >= img.min() - 1e-6 and s.max() <= img.max() + 1e-6  # the image's own scale
    assert not torch.equal(s[0], s[1]) and not torch.allclose(s[0], img[None][0], atol=1e-3)
    # per-sample seeds: sample i does not depend on n or on the other seeds
    assert torch.equal(gen.sample([2]).samples[0], s[2])
    assert torch.equal(gen.sample([5, 1]).samples[1], s[1])
    gen.save(tmp_path / "model")
    loaded = build_generator("singan", TINY).load(tmp_path / "model", runtime=Runtime(progress=False))
    assert loaded.sizes == gen.sizes and loaded.noise_amps == pytest.approx(gen.noise_amps)
    assert torch.equal(loaded.sample([0, 1, 2]).samples, s)


def test_fit_is_deterministic_and_resumes_identically(fitted, tmp_path):
    gen, img, _ = fitted
    ref = gen.sample([0, 1]).samples

    # (a) killed at the first iteration of scale 2: resumes from the per-scale checkpoint of scale 1;
    # (b) killed after iteration 3 of scale 1 with a checkpoint every 2 iterations: resumes mid-scale.
    for at, it, every in [(2, 1, 0), (1, 3, 2)]:
        out = tmp_path / f"run{at}"
        rt = Runtime(progress=False, log_every=1, checkpoint_every=every, logger=Interrupt("singan", at, it, TINY["niter"]))
        with pytest.raises(Stop):
            SinGAN(runtime=rt, **TINY).fit(img, seed=3, out_dir=out)
        assert (out / "checkpoints" / "last.pt").exists()
        resumed = SinGAN(runtime=Runtime(progress=False, checkpoint_every=every), **TINY)
        resumed.fit(img, seed=3, out_dir=out)
        assert torch.equal(resumed.sample([0, 1]).samples, ref), (at, it)
    # a finished run resumes to the same model without training; resume=False retrains from scratch
    again = SinGAN(runtime=Runtime(progress=False), **TINY)
    again.fit(img, seed=3, out_dir=tmp_path / "run2")
    assert torch.equal(again.sample([0, 1]).samples, ref)
    # another seed gives another model
    other = SinGAN(runtime=Runtime(progress=False, resume=False), **TINY)
    other.fit(img, seed=4, out_dir=tmp_path / "other")
    assert not torch.equal(other.sample([0, 1]).samples, ref)


@pytest.mark.parametrize("mode", ["redraw", "fixed"])
def test_coarsest_z_star_redrawn_every_epoch_or_fixed(mode, tmp_path, tiny_image):
    """tamarott/SinGAN SinGAN/training.py train_single_scale draws a new z_opt every epoch at the
    coarsest scale and keeps the last one (z_star=redraw, the default); z_star=fixed draws it once."""
    seen: dict[int, list[torch.Tensor]] = {}

    class Spy(SinGAN):
        def _z_star(self, n, gen):
            z = super()._z_star(n, gen)
            seen.setdefault(n, []).append(z.clone())
            return z

    assert SinGAN().p["z_star"] == "redraw"
    spy = Spy(runtime=Runtime(progress=False, max_steps=2), **TINY, z_star=mode)
    first = None
    orig_fit_scale = spy._fit_scale

    def fit_scale(n, *a, **k):
        nonlocal first
        if n == 0:
            first = spy.z_opt.clone()  # the z* drawn before training
        return orig_fit_scale(n, *a, **k)

    spy._fit_scale = fit_scale
    spy.fit(tiny_image, seed=0, out_dir=tmp_path / mode)
    z0 = seen[0]
    assert len(z0) == 2 and z0[0].shape == (1, 1, 16, 16)
    assert all(torch.count_nonzero(z) == 0 for n in range(1, 5) for z in seen[n])  # zero at finer scales
    if mode == "redraw":
        assert not torch.equal(z0[0], z0[1]) and not torch.equal(z0[0], first)
        assert torch.equal(spy.z_opt, z0[1])  # the last epoch's z* is the one kept (for the finer scales)
    else:
        assert torch.equal(z0[0], z0[1]) and torch.equal(z0[0], first) and torch.equal(spy.z_opt, first)


def test_z_star_option_changes_the_model(tmp_path, tiny_image):
    a = SinGAN(runtime=Runtime(progress=False, max_steps=2), **TINY)
    a.fit(tiny_image, seed=0, out_dir=tmp_path / "a")
    b = SinGAN(runtime=Runtime(progress=False, max_steps=2), **TINY, z_star="fixed")
    b.fit(tiny_image, seed=0, out_dir=tmp_path / "b")
    assert not torch.equal(a.sample([0]).samples, b.sample([0]).samples)
    with pytest.raises(InputError, match="z_star"):
        SinGAN(z_star="once")


def test_max_steps_overrides_niter(tmp_path, tiny_image):
    seen = []

    class Log:
        def log_metrics(self, metrics, step):
            seen.append(step)

    gen = SinGAN(runtime=Runtime(progress=False, max_steps=2, log_every=1, logger=Log()), **TINY)
    gen.fit(tiny_image, seed=0, out_dir=tmp_path)
    assert seen == list(range(1, 11))  # 5 scales x 2 iterations


def test_bad_inputs(fitted, tmp_path, tiny_image):
    gen, _, _ = fitted
    with pytest.raises(InputError, match="SinGAN.*too small"):
        SinGAN(runtime=Runtime(progress=False)).fit(torch.rand(1, 20, 40), seed=0, out_dir=tmp_path)
    with pytest.raises(InputError, match="constant"):
        SinGAN(runtime=Runtime(progress=False), **TINY).fit(torch.full((1, 32, 32), 0.5), seed=0, out_dir=tmp_path)
    with pytest.raises(InputError, match="positive"):
        gen.sample([])
    with pytest.raises(InputError, match="one per sample"):
        gen.sample(2)
    with pytest.raises(InputError, match="not fitted"):
        SinGAN().sample([0])
    with pytest.raises(InputError, match="scale_factor"):
        SinGAN(scale_factor=1.5)
    with pytest.raises(InputError, match="niter"):
        SinGAN(niter=0)
    # a checkpoint of another generator
    from sinsemi.generators.base import write_model

    write_model(tmp_path / "other", "consingan", {}, {})
    with pytest.raises(InputError, match="'consingan' generator, not a 'singan'"):
        SinGAN.load(tmp_path / "other")
    # resuming a checkpoint written for other settings
    out = tmp_path / "ck"
    SinGAN(runtime=Runtime(progress=False, max_steps=1), **TINY).fit(tiny_image, seed=0, out_dir=out)
    with pytest.raises(InputError, match="other settings"):
        SinGAN(runtime=Runtime(progress=False, max_steps=1), **TINY).fit(tiny_image, seed=1, out_dir=out)


def test_intensity_raw_is_the_official_map(tmp_path, tiny_image):
    """intensity=raw: [0, 1] -> [-1, 1] as the official ``norm``; minmax (default): the image's range."""
    x01 = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3)
    raw = SinGAN(runtime=Runtime(progress=False, max_steps=1), **TINY, intensity="raw")
    raw.fit(tiny_image, seed=0, out_dir=tmp_path / "raw")
    torch.testing.assert_close(raw.norm.forward(x01), torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 3))
    mm = SinGAN(runtime=Runtime(progress=False, max_steps=1), **TINY)
    mm.fit(tiny_image, seed=0, out_dir=tmp_path / "mm")
    y = mm.norm.forward(tiny_image)
    assert y.min().item() == pytest.approx(-1.0) and y.max().item() == pytest.approx(1.0)
    with pytest.raises(InputError, match="intensity"):
        SinGAN(intensity="zscore")
