"""The SinSEMI generator (profile tiny: a 32x32 image, 3 scales 16/23/32, a few steps)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sinsemi.errors import InputError
from sinsemi.generators.base import OneShotGenerator, Runtime
from sinsemi.generators.sinsemi import SinSEMI

CONF = files("sinsemi.conf")


def tiny_params(**over) -> dict:
    """conf/generator/sinsemi.yaml merged with the tiny profile (minus ``name``)."""
    base = OmegaConf.load(CONF / "generator" / "sinsemi.yaml")
    prof = OmegaConf.load(CONF / "generator_profile" / "sinsemi" / "tiny.yaml")
    params = OmegaConf.to_container(OmegaConf.merge(base, prof.generator))
    params.pop("name")
    params.update(over)
    return params


def tiny_sampler() -> dict:
    base = OmegaConf.load(CONF / "sampler" / "sinsemi.yaml")
    prof = OmegaConf.load(CONF / "generator_profile" / "sinsemi" / "tiny.yaml")
    return OmegaConf.to_container(OmegaConf.merge(base, prof.sampler))


def fit(image, out_dir, max_steps=None, **over) -> SinSEMI:
    gen = SinSEMI(runtime=Runtime(progress=False, max_steps=max_steps, checkpoint_every=3), **tiny_params(**over))
    gen.fit(image, seed=0, out_dir=out_dir)
    return gen


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    x = torch.arange(32).float()
    img = (0.5 + 0.2 * torch.cos(2 * torch.pi * x / 10))[None, None, :].expand(1, 32, 32).clone()
    img[:, 14:18, 12:20] = 0.3
    img = (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    out = tmp_path_factory.mktemp("sinsemi")
    return img, out, fit(img, out, max_steps=12)


def test_is_a_one_shot_generator(trained):
    assert isinstance(trained[2], OneShotGenerator)


def test_every_scale_is_trained(trained):
    _, _, gen = trained
    counts = gen.module.scale_counts
    assert gen.pyramid.sizes == [(16, 16), (23, 23), (32, 32)]
    assert counts.sum().item() == 12 and (counts > 0).all(), counts  # the finest scale included
    assert gen.module.global_step == 12


def test_resume_matches_an_uninterrupted_run(tiny_image, tmp_path, monkeypatch):
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    full = fit(tiny_image, tmp_path / "full", max_steps=6)
    # an interrupted run: it dies in step 5, after the periodic checkpoint of step 3
    step = SinSEMIModule.training_step

    def dying(self, batch, batch_idx):
        if self.global_step == 4:
            raise RuntimeError("simulated crash")
        return step(self, batch, batch_idx)

    monkeypatch.setattr(SinSEMIModule, "training_step", dying)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tiny_image, tmp_path / "resumed", max_steps=6)
    monkeypatch.setattr(SinSEMIModule, "training_step", step)
    ckpt = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3
    resumed = fit(tiny_image, tmp_path / "resumed", max_steps=6)
    assert resumed.module.global_step == 6
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["last.ckpt"]
    sa, sb = full.module.state_dict(), resumed.module.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k  # net, EMA and scale counts identical
    s1 = full.sample([5, 6], **tiny_sampler()).samples
    s2 = resumed.sample([5, 6], **tiny_sampler()).samples
    assert torch.equal(s1, s2)


def test_same_seed_same_samples_independent_of_batch(trained):
    img, _, gen = trained
    settings = tiny_sampler()
    out = gen.sample([0, 1, 2, 3], **settings)
    a = out.samples
    b = gen.sample([0, 1, 2, 3], batch_size=1, **settings).samples
    c = gen.sample([2], **settings).samples
    assert a.shape == (4, 1, 32, 32) and a.dtype == torch.float32
    # equal up to float rounding: oneDNN may block a conv differently for another batch size
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(a[2], c[0], rtol=0, atol=1e-5)
    assert not torch.equal(a[0], a[1])
    assert out.nfe == settings["steps"] * 3 and out.intermediates == []
    # the sample_info recorded in samples.npz
    assert set(out.sample_info()) == {"nfe", "steps", "kind", "coarse", "coarse_steps", "guidance", "noise",
                                      "clamped_pixels", "lpips_net", "random_backbone"}
    # samples are in the image's own scale (not standardised)
    assert abs(a.mean().item() - img.mean().item()) < 1.0


def test_samples_leaving_the_image_range_are_clamped_and_counted(trained):
    """A trajectory that runs away (seen at 100 EM steps with the quick net) must not hand the
    evaluation values outside [0, 1]: they are clamped and the count is recorded."""
    import dataclasses

    _, _, gen = trained
    keep = gen.standardizer
    try:
        gen.standardizer = dataclasses.replace(keep, std=keep.std * 50)  # blow the spread far past [0, 1]
        out = gen.sample([0, 1], **tiny_sampler())
    finally:
        gen.standardizer = keep
    assert out.samples.min() >= 0 and out.samples.max() <= 1
    assert out.clamped_pixels > 0 and out.sample_info()["clamped_pixels"] == out.clamped_pixels
    assert gen.sample([0, 1], **tiny_sampler()).clamped_pixels == 0


def test_save_load_round_trip(trained, tmp_path):
    _, _, gen = trained
    gen.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "generator.json").read_text())
    assert meta["name"] == "sinsemi" and meta["params"]["width"] == tiny_params()["width"]
    loaded = SinSEMI.load(tmp_path / "model", runtime=Runtime(progress=False))
    settings = tiny_sampler()
    assert torch.equal(loaded.sample([3, 4], **settings).samples, gen.sample([3, 4], **settings).samples)
    out = loaded.sample([3, 4], keep_intermediates=True, **settings)
    assert [tuple(x.shape[-2:]) for x in out.intermediates] == [(16, 16), (23, 23), (32, 32)]
    torch.testing.assert_close(out.intermediates[-1], out.samples)


def test_guidance_with_random_backbone_is_recorded(trained):
    _, _, gen = trained
    settings = dict(tiny_sampler(), guidance=1.0)
    out = gen.sample([0, 1], allow_random_backbone=True, **settings)
    s = out.samples
    assert torch.isfinite(s).all()
    assert out.info["guidance"] == 1.0 and out.info["lpips_net"] == "alex"
    assert isinstance(out.info["random_backbone"], bool)
    plain = gen.sample([0, 1], **tiny_sampler()).samples
    assert not torch.equal(s, plain)


def test_guidance_without_weights_names_the_file(trained, monkeypatch, tmp_path):
    monkeypatch.setenv("SINSEMI_WEIGHTS_DIR", str(tmp_path / "empty"))
    _, _, gen = trained
    with pytest.raises(InputError, match="alexnet"):
        gen.sample([0], **dict(tiny_sampler(), guidance=0.5))


@pytest.mark.parametrize("bad", [dict(steps=0), dict(steps=-2), dict(steps=1.5), dict(guidance=-1.0),
                                 dict(noise=-0.1), dict(batch_size=0)])
def test_bad_sampler_settings(trained, bad):
    _, _, gen = trained
    with pytest.raises(InputError):
        gen.sample([0], **{**tiny_sampler(), **bad})


def test_bad_requests(trained, tmp_path):
    _, _, gen = trained
    with pytest.raises(InputError, match="one per sample"):
        gen.sample(2)
    with pytest.raises(InputError, match="not been trained"):
        SinSEMI(**tiny_params()).sample([0])
    with pytest.raises(InputError):
        SinSEMI(**tiny_params(width=15))
    with pytest.raises(InputError, match="constant"):
        SinSEMI(**tiny_params()).fit(torch.ones(1, 32, 32), seed=0, out_dir=tmp_path)


def test_model_of_another_width_or_generator(trained, tmp_path):
    _, _, gen = trained
    gen.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "generator.json"
    meta = json.loads(meta_path.read_text())
    meta["params"]["width"] = 32
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="width"):
        SinSEMI.load(tmp_path / "m")
    meta["name"] = "sinddm"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="sinddm"):
        SinSEMI.load(tmp_path / "m")


def test_resume_from_a_checkpoint_of_another_width(trained, tiny_image):
    _, out, _ = trained  # holds a width-16 last.ckpt
    with pytest.raises(InputError, match="width"):
        fit(tiny_image, out, max_steps=13, width=32)


@pytest.mark.parametrize("kind,coarse", [("bridge", "posterior"), ("bridge", "ode"), ("ode", "posterior"),
                                         ("em", "posterior"), ("sde", "posterior")])
def test_every_sampler_kind_samples_and_reports(trained, kind, coarse):
    _, _, gen = trained
    settings = dict(tiny_sampler(), kind=kind, coarse=coarse)
    out = gen.sample([5, 6], **settings)
    a = out.samples
    assert a.shape == (2, 1, 32, 32) and torch.isfinite(a).all()
    assert out.info["kind"] == kind and out.info["coarse"] == coarse and out.nfe == settings["steps"] * 3
    torch.testing.assert_close(gen.sample([6], **settings).samples[0], a[1], rtol=0, atol=1e-5)


def test_ode_differs_from_stochastic_kinds_only_in_noise(trained):
    _, _, gen = trained
    ode = [gen.sample([s], **dict(tiny_sampler(), kind="ode")).samples for s in (0, 1)]
    # the ODE's only randomness is the scale-0 start
    assert not torch.equal(ode[0], ode[1])
    with pytest.raises(InputError, match="sampler.kind must be one of"):
        gen.sample([0], **dict(tiny_sampler(), kind="heun"))


def test_crop_windows_and_end_weighted_times_are_drawn_per_step(tiny_image):
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    kw = dict(channels=1, width=8, n_scales=3, batch_size=4, lr=1e-3, milestones=[5], lr_gamma=0.5, sigma=0.35,
              t_eps=0.01, ema_decay=0.9, seed=3)
    levels = [torch.rand(1, 16, 16), torch.rand(1, 23, 23), torch.rand(1, 32, 32)]
    batch = {f"x0_{s}": lv for s, lv in enumerate(levels)}
    batch.update({f"x1_{s}": torch.rand_like(levels[s]) for s in (1, 2)})
    m = SinSEMIModule(**kw, crop=20, t_sampling="ends", padding_mode="reflect")
    seen = set()
    for step in range(30):
        s, x0, x1, t, z = m._draws(step, batch)
        h = levels[s].shape[-1]
        assert x0.shape[-1] == min(20, h) and x1.shape == x0.shape == z.shape
        if s > 0:  # x0 and x1 are cut from the same window: each crop is a window of the level
            found = any(torch.equal(x0[0], levels[s][:, a:a + 20, b:b + 20]) and
                        torch.equal(x1[0], batch[f"x1_{s}"][:, a:a + 20, b:b + 20])
                        for a in range(h - 19) for b in range(h - 19))
            assert found
            seen.add(s)
        assert (t >= 0).all() and (t <= 1).all()
        again = m._draws(step, batch)
        assert torch.equal(again[1], x0) and torch.equal(again[3], t)  # a pure function of (seed, step)
    assert seen == {1, 2}
    # ends: u -> (1 - cos(pi u)) / 2 puts more mass near 0 and 1 than uniform
    ts = torch.cat([m._draws(k, batch)[3] for k in range(400)])
    ends = ((ts < 0.1) | (ts > 0.9)).float().mean().item()
    assert 0.35 < ends < 0.45  # 2 * arccos(0.8) / pi = 0.410 (uniform: 0.2)


def test_reflect_padding_trains_saves_and_loads(tiny_image, tmp_path):
    gen = fit(tiny_image, tmp_path, max_steps=3, padding_mode="reflect", crop=20)
    gen.save(tmp_path / "model")
    loaded = SinSEMI.load(tmp_path / "model", runtime=Runtime(progress=False))
    assert loaded.net.blocks[0].depthwise.padding_mode == "reflect"
    s = tiny_sampler()
    torch.testing.assert_close(loaded.sample([0], **s).samples, gen.sample([0], **s).samples)
    with pytest.raises(InputError, match="padding_mode"):
        SinSEMI(**tiny_params(padding_mode="mirror"))
    with pytest.raises(InputError, match="crop"):
        SinSEMI(**tiny_params(crop=4))


def test_kernel_7_trains_saves_loads_and_guards_resume(tiny_image, tmp_path):
    """generator.kernel: a 7x7 depthwise conv per block (receptive field 41 px), kept through save/load;
    a kernel-5 run dir does not resume a kernel-7 fit (one clear error), bad sizes are refused."""
    from sinsemi.nets.sinddm import receptive_field

    gen = fit(tiny_image, tmp_path, max_steps=3, kernel=7)
    assert tuple(gen.net.blocks[0].depthwise.weight.shape[-2:]) == (7, 7) and receptive_field(4, 7) == 41
    gen.save(tmp_path / "model")
    loaded = SinSEMI.load(tmp_path / "model", runtime=Runtime(progress=False))
    assert loaded.params["kernel"] == 7 and loaded.net.blocks[3].depthwise.kernel_size == (7, 7)
    s = tiny_sampler()
    torch.testing.assert_close(loaded.sample([0], **s).samples, gen.sample([0], **s).samples)
    with pytest.raises(InputError, match="kernel=7 there, 5 here"):
        fit(tiny_image, tmp_path, max_steps=6)
    for bad in (4, 11, 7.5, True):
        with pytest.raises(InputError, match="kernel must be one of 3, 5, 7, 9"):
            SinSEMI(**tiny_params(kernel=bad))


def test_resume_from_a_checkpoint_of_another_image_of_the_same_size(trained, tiny_image):
    _, out, _ = trained  # its last.ckpt was trained on the fixture's image
    other = tiny_image.flip(-1)
    with pytest.raises(InputError, match="image_sha256"):
        fit(other, out, max_steps=13)


def test_scale_weights_set_how_often_each_scale_is_drawn(tiny_image, tmp_path):
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    kw = dict(channels=1, width=8, n_scales=3, batch_size=2, lr=1e-3, milestones=[5], lr_gamma=0.5, sigma=0.35,
              t_eps=0.01, ema_decay=0.9, seed=3)
    levels = [torch.rand(1, 16, 16), torch.rand(1, 23, 23), torch.rand(1, 32, 32)]
    batch = {f"x0_{s}": lv for s, lv in enumerate(levels)}
    batch.update({f"x1_{s}": torch.rand_like(levels[s]) for s in (1, 2)})

    def counts(weights):
        m = SinSEMIModule(**kw, scale_weights=weights)
        drawn = torch.tensor([m._draws(k, batch)[0] for k in range(600)])
        return torch.bincount(drawn, minlength=3).tolist()

    assert counts([0.0, 1.0, 0.0]) == [0, 600, 0]
    c = counts([0.6, 0.2, 0.2])  # binomial(600, 0.6): mean 360, std 12
    assert 320 < c[0] < 400 and 80 < c[1] < 160 and 80 < c[2] < 160
    uniform = counts(None)
    assert all(160 < k < 240 for k in uniform)  # the paper's uniform draw
    with pytest.raises(InputError, match="scale_weights"):
        SinSEMI(**tiny_params(scale_weights=[1.0, -1.0, 0.0]))
    with pytest.raises(InputError, match="scale_weights"):
        SinSEMI(**tiny_params(scale_weights=[0.0, 0.0, 0.0]))
    with pytest.raises(InputError, match="scale_weights has 2 entries"):
        fit(tiny_image, tmp_path, max_steps=1, scale_weights=[1.0, 1.0])


def test_coarse_steps_change_only_scale_0(trained):
    _, _, gen = trained
    settings = tiny_sampler()
    out = gen.sample([0], **dict(settings, coarse_steps=7))
    assert out.nfe == settings["steps"] * 2 + 7 and out.info["coarse_steps"] == 7
    with pytest.raises(InputError, match="coarse_steps"):
        gen.sample([0], **dict(settings, coarse_steps=0))
