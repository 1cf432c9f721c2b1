"""Every registered generator honours the interface: fit -> save -> load -> sample on a 32x32 image.

Each generator is built from its Hydra config with ``profile=tiny`` (seconds per generator), fitted
once for this module, and is a :class:`OneShotGenerator` whose ``sample(seeds)`` returns a
:class:`SampleOutput`; its samples are checked for shape, dtype, finiteness, a plausible intensity
range, per-seed determinism, diversity, and not being a copy of the training image; bad requests
(no seeds, a checkpoint of another generator) must raise :class:`InputError`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sinsemi.errors import InputError
from sinsemi.generators.base import (GENERATORS, OneShotGenerator, Runtime, SampleOutput, build_generator,
                                    generator_class, load_generator)

#: a sample must differ from the image, and from every other sample, by at least this fraction of
#: the image's std in mean absolute difference; the image itself (or a jittered copy) scores ~0.
MIN_DIFF_OVER_STD = 0.1
#: the generators without a network (``nfe`` is None)
TRAINING_FREE = {"gpnn", "gpdm"}


def _present(name: str) -> bool:
    return importlib.util.find_spec(GENERATORS[name].split(":")[0]) is not None


def _params() -> list:
    return [pytest.param(n, id=n, marks=[] if _present(n) else [pytest.mark.skip(reason="generator module not present")])
            for n in sorted(GENERATORS)]


def _tiny_config(name: str):
    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return compose("train", overrides=[f"generator={name}", "profile=tiny"])


def _mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


@pytest.fixture(scope="module", params=_params())
def fitted(request, tiny_image_shared, tmp_path_factory):
    """(name, generator fitted at profile=tiny then saved and loaded, its sampler settings, model dir)."""
    name = request.param
    cfg = _tiny_config(name)
    params = OmegaConf.to_container(cfg.generator, resolve=True)
    settings = OmegaConf.to_container(cfg.sampler, resolve=True) or {}
    runtime = Runtime(max_steps=cfg.trainer.max_steps, progress=False, precision="32-true")
    tmp = tmp_path_factory.mktemp(name)

    gen = build_generator(params.pop("name"), params, runtime)
    assert gen.name == name
    gen.fit(tiny_image_shared, seed=0, out_dir=tmp / "run")
    gen.save(tmp / "model")
    gen = load_generator(tmp / "model", runtime=runtime)
    assert gen.name == name
    return name, gen, settings, tmp / "model"


def test_sample_returns_a_sample_output(fitted, tiny_image_shared):
    name, gen, settings, _ = fitted
    assert isinstance(gen, OneShotGenerator)
    out = gen.sample([7, 3, 5], **settings)
    assert isinstance(out, SampleOutput)
    assert out.samples.shape == (3, *tiny_image_shared.shape) and out.samples.dtype == torch.float32
    if name in TRAINING_FREE:
        assert out.nfe is None
    else:
        assert isinstance(out.nfe, int) and out.nfe > 0
    assert isinstance(out.clamped_pixels, int) and out.clamped_pixels >= 0
    assert out.intermediates == []  # only with keep_intermediates=True
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in out.info.values())
    assert (out.sample_info() is None) == (not out.info)
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.nfe = 0


def test_fit_save_load_sample(fitted, tiny_image_shared):
    name, gen, settings, model_dir = fitted
    runtime = gen.runtime
    x = gen.sample([0, 1, 2, 3], **settings).samples
    img = tiny_image_shared
    assert x.shape == (4, *img.shape), f"shape {tuple(x.shape)}"
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all(), "non-finite sample values"

    lo, hi = float(img.min()), float(img.max())
    span = hi - lo
    assert float(x.min()) >= lo - 0.5 * span and float(x.max()) <= hi + 0.5 * span, (
        f"samples span [{float(x.min()):.3f}, {float(x.max()):.3f}], image [{lo:.3f}, {hi:.3f}]")

    again = gen.sample([1, 2], **settings).samples
    torch.testing.assert_close(again, x[1:3], atol=1e-3 * span, rtol=0,
                               msg=lambda m: f"sample i must depend only on seeds[i]: {m}")

    std = float(img.std())
    copy_dist = min(_mean_abs(s, img) for s in x)
    assert copy_dist > MIN_DIFF_OVER_STD * std, f"a sample is (nearly) the training image: {copy_dist:.4f} vs std {std:.4f}"
    pair_dist = min(_mean_abs(a, b) for a, b in itertools.combinations(x, 2))
    assert pair_dist > MIN_DIFF_OVER_STD * std, f"two samples are (nearly) equal: {pair_dist:.4f} vs std {std:.4f}"

    with pytest.raises(InputError):
        gen.sample([], **settings)

    other = next((o for o in sorted(GENERATORS) if o != name and _present(o)), None)
    if other is not None:
        with pytest.raises(InputError, match=name):
            generator_class(other).load(model_dir, runtime=runtime)
