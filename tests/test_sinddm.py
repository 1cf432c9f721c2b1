"""SinDDM: pyramid, gamma schedule, the paper net's size, and the generator contract on a tiny image."""

from __future__ import annotations

import pytest
import torch
import yaml

from sinsemi.cli._common import conf_dir
from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, build_generator, generator_class, write_model
from sinsemi.generators.sinddm import SinDDM
from sinsemi.nets.sinddm import SinDDMNet

NAME = "sinddm"
_conf = yaml.safe_load(open(f"{conf_dir()}/generator/{NAME}.yaml"))
_conf.pop("name")
TINY = {**_conf, **yaml.safe_load(open(f"{conf_dir()}/generator_profile/{NAME}_tiny.yaml"))["generator"]}
SAMPLER = {}


def test_paper_net_and_pyramid():
    net = SinDDMNet(1, 160, time_scale=1.0)
    assert 1.05e6 < sum(p.numel() for p in net.parameters()) < 1.15e6  # the paper's 1.1 M
    g = SinDDM(**{k: v for k, v in _conf.items()})
    g.build(1, (96, 96))
    assert g.sizes == [(55, 55), (73, 73), (96, 96)]


def test_image_too_small_names_sinddm():
    g = SinDDM(**_conf)
    with pytest.raises(InputError, match="sinddm.*pyramid"):
        g.fit(torch.rand(1, 32, 32), seed=0, out_dir="/nonexistent-never-written")


def test_budget_fractions():
    with pytest.raises(InputError, match="fractions"):
        SinDDM(**{**_conf, "lr_milestones": [20000]})
    assert all(0 < m < 1 for m in _conf["lr_milestones"]) and 0 < _conf["ema_start"] < 1


def test_gammas_and_start_step():
    g = SinDDM(**_conf)
    g.scale_losses = torch.tensor([0.3, 0.1])
    sigma = g.schedule.sigma_over_alpha
    for s, L in ((1, 0.3), (2, 0.1)):
        gam = g.gammas(s)
        torch.testing.assert_close(gam, (sigma / L).clamp(0, 1))
        assert torch.all(gam[1:] >= gam[:-1])
        t0 = g.start_step(s)
        assert sigma[t0] > L and (t0 == 0 or sigma[t0 - 1] <= L)
    assert g.start_step(1) > g.start_step(2)  # a larger residual starts at more noise


def test_start_steps_setting(tmp_path, tiny_image):
    gen = _fit(tmp_path, tiny_image, max_steps=2)
    a = gen.sample(1, seeds=[0], start_steps=[10, 10])
    assert a.shape == (1, 1, 32, 32)
    with pytest.raises(InputError, match="start step"):
        gen.sample(1, seeds=[0], start_steps=[0, 10])


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
