"""sinsemi.validation: the one number validator, the sampler-key check against each generator's
signature, the device resolver and the weights check."""

from __future__ import annotations

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.generators.base import GENERATORS
from sinsemi.validation import (check_number, check_sampler_settings, check_seed, check_weights, check_writable_dir,
                                resolve_device, sampler_defaults)


@pytest.mark.parametrize("value,kw,ok", [
    (3, {}, True), (0, {}, False), (0, {"strict": False}, True), (-1, {"strict": False}, False),
    (2.5, {"integer": True}, False), (4.0, {"integer": True}, True), (True, {}, False), ("3", {}, False),
    (float("nan"), {}, False), (None, {"allow_none": True}, True), (None, {}, False), (7, {"maximum": 5}, False),
])
def test_check_number(value, kw, ok):
    if ok:
        check_number("x", value, **kw)
    else:
        with pytest.raises(InputError, match=r"^x must be "):
            check_number("x", value, **kw)


def test_check_seed():
    assert check_seed("seed", 0) == 0 and check_seed("seed", 5.0) == 5
    for bad in (-1, "abc", 1.5, None):
        with pytest.raises(InputError, match="seed must be an integer >= 0"):
            check_seed("seed", bad)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_unknown_sampler_keys_are_an_error_for_every_generator(name):
    from sinsemi.generators.base import generator_class

    known = sampler_defaults(generator_class(name))
    check_sampler_settings(name, {k: v for k, v in known.items() if k != "steps"})  # its own keys pass
    with pytest.raises(InputError, match=f"unknown sampler setting\\(s\\) sampler.bogus for generator {name}"):
        check_sampler_settings(name, {"bogus": 1})


def test_sampler_steps():
    check_sampler_settings("sinfusion", {"steps": None})  # null: the generator's own schedule
    with pytest.raises(InputError, match="sampler.steps must be an integer > 0, got None"):
        check_sampler_settings("sinsemi", {"steps": None})
    with pytest.raises(InputError, match="sampler.steps must be an integer > 0"):
        check_sampler_settings("sindiffusion", {"steps": 0})


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == ("cpu", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == ("cuda", "gpu")  # auto is the GPU when there is one (sample.py said cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == ("cpu", "cpu")
    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("gpu")
    with pytest.raises(InputError, match="trainer.accelerator must be one of cpu, gpu, auto"):
        resolve_device("tpu")


def test_check_writable_dir(tmp_path):
    assert check_writable_dir(tmp_path / "a" / "b", "out_dir") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checks only, creates nothing
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"cannot create output directory .*f/sub \(out_dir\)"):
        check_writable_dir(tmp_path / "f" / "sub", "out_dir")


def test_check_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("SINSEMI_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(InputError, match="evaluate=true needs pretrained LPIPS 'alex' weights"):
        check_weights(lpips_nets=["alex"], inception=True, why="evaluate=true ")
    with pytest.raises(InputError, match="InceptionV3 weights for SIFID"):
        check_weights(inception=True)
    check_weights(lpips_nets=["alex"], inception=True, allow_random=True)
