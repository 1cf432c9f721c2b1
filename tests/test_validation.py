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


def _eval_cfg(profile: str = "tiny") -> dict:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf


    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return OmegaConf.to_container(compose("eval", overrides=[f"profile={profile}"]), resolve=True)


@pytest.mark.parametrize("profile", ["tiny", "quick", "standard", "paper"])
def test_validate_eval_accepts_the_shipped_config(profile):
    from sinsemi.jobs.eval import KNOWN_KEYS
    from sinsemi.validation import validate_eval

    validate_eval(_eval_cfg(profile), KNOWN_KEYS)


@pytest.mark.parametrize("path,value,match", [
    ("typo", True, "unknown eval setting\\(s\\) typo"),
    ("mode", "both", "mode must be one of samples, reference, got 'both'"),
    ("seed", "abc", "seed must be an integer >= 0, got 'abc'"),
    ("n", 0, "n must be an integer > 0 \\(or null\\), got 0"),
    ("segmentation", "yes", "segmentation must be true or false, got 'yes'"),
    ("reference.max_side", 0, "reference.max_side must be an integer > 0"),
    ("metrics.lpips_net", "resnet", "metrics.lpips_net must be one of alex, vgg, squeeze"),
    ("metrics.batch_size", 0, "metrics.batch_size must be an integer > 0, got 0"),
    ("test_set.random.n", -1, "test_set.random.n must be an integer >= 0, got -1"),
    ("test_set.paper", "no", "test_set.paper must be true or false"),
])
def test_validate_eval_refuses(tmp_path, path, value, match):
    from sinsemi.jobs.eval import KNOWN_KEYS
    from sinsemi.validation import validate_eval

    cfg = _eval_cfg()
    *parents, key = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[key] = value
    with pytest.raises(InputError, match=match):
        validate_eval(cfg, KNOWN_KEYS)


def test_validate_eval_paths(tmp_path):
    from sinsemi.jobs.eval import KNOWN_KEYS
    from sinsemi.validation import validate_eval

    (tmp_path / "f").write_text("x")
    cfg = {**_eval_cfg(), "out_dir": str(tmp_path / "f" / "o")}
    with pytest.raises(InputError, match="cannot create output directory .*\\(out_dir\\)"):
        validate_eval(cfg, KNOWN_KEYS)
    cfg = {**_eval_cfg(), "segmentation": True, "test_set": {"paper": True, "random": {"n": 0, "seed": 1}, "dir": str(tmp_path / "no")}}
    with pytest.raises(InputError, match="test_set.dir=.* is not a directory"):
        validate_eval(cfg, KNOWN_KEYS)
    validate_eval({**cfg, "segmentation": False}, KNOWN_KEYS)  # the test sets are not used then
    assert not (tmp_path / "f" / "o").exists()


@pytest.mark.parametrize("key,value,match", [
    ("threshold", "abc", "labeller.threshold must be a number > 0, got 'abc'"),
    ("align", "yes", "labeller.align must be true or false"),
    ("contrast", "high", "labeller.contrast must be a number > 0 \\(or null\\)"),
    ("min_area", -1, "labeller.min_area must be an integer >= 0, got -1"),
    ("mask_rel", 1.0, "labeller.mask_rel must be a number >= 0 and < 1"),
    ("mask_shape", "blob", "labeller.mask_shape"),
    ("shift_window", 0, "labeller.shift_window must be an integer >= 1"),
])
def test_labeller_settings_are_checked(key, value, match):
    from sinsemi.metrics.labeller import LabellerConfig

    with pytest.raises(InputError, match=match):
        LabellerConfig.from_dict({key: value})
    assert LabellerConfig.from_dict({"contrast": None, "threshold": 0.05, "min_area": 10}).min_area == 10
