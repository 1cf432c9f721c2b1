"""Each generator's parameters and sampler settings are one dataclass, checked once
(:mod:`sinsemi.generators.params`); what is stored derives from it."""

from __future__ import annotations

import ast
import inspect
from dataclasses import asdict, fields
from importlib.resources import files

import pytest
import yaml

from sinsemi.errors import InputError
from sinsemi.generators.base import GENERATORS, build_generator
from sinsemi.generators.params import (IDENTITY, SinSEMIParams, SinSEMISampler, defaults, module_hparams,
                                       params_class, parse_params, parse_sampler, sampler_class)
from sinsemi.runs import make_fingerprint


def _conf(group: str, name: str) -> dict:
    return yaml.safe_load((files("sinsemi.conf") / group / f"{name}.yaml").read_text()) or {}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_config_key_is_a_field_and_the_configs_parse(name):
    gen = _conf("generator", name)
    assert gen.pop("name") == name
    assert set(gen) <= {f.name for f in fields(params_class(name))}
    parse_params(name, gen)
    parse_sampler(name, _conf("sampler", name))
    with pytest.raises(InputError, match=f"unknown generator setting\\(s\\) generator.bogus for generator {name}"):
        parse_params(name, {**gen, "bogus": 1})


def test_sinsemi_generator_json_params_are_the_dataclass():
    cfg = {k: v for k, v in _conf("generator", "sinsemi").items() if k != "name"}
    gen = build_generator("sinsemi", cfg)
    assert gen.params == asdict(parse_params("sinsemi", cfg))
    assert list(gen.params) == [f.name for f in fields(SinSEMIParams)]  # generator.json's key order
    assert isinstance(gen.params["coarse_area"], float) and isinstance(gen.params["kernel"], int)


def test_module_hparams_keep_the_recorded_keys_and_order():
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    # the order Lightning recorded from SinSEMIModule's former signature: checkpoints stay the same
    recorded = ["channels", "width", "n_scales", "batch_size", "lr", "milestones", "lr_gamma", "sigma", "t_eps",
                "ema_decay", "seed", "channels_last", "crop", "t_sampling", "padding_mode", "scale_weights",
                "image_sha256", "fast_kernels", "compile", "precision", "kernel"]
    hp = module_hparams(SinSEMIParams(width=8), channels=1, n_scales=3, seed=4, image_sha256="x", precision="32-true")
    assert list(hp) == recorded and hp["width"] == 8 and hp["seed"] == 4
    assert set(IDENTITY) <= set(hp)
    m = SinSEMIModule(**hp)
    assert list(m.hparams.items()) == list(hp.items()) and m._hparams_name == "kwargs"
    with pytest.raises(AssertionError):
        module_hparams(channels=1, n_scales=3, seed=0, iterations=5)  # not a module hparam


def test_fingerprint_leaves_out_the_speed_only_fields(tiny_image):
    speed_only = sorted(f.name for f in fields(SinSEMIParams) if f.metadata.get("model") is False)
    assert speed_only == ["compile", "fast_kernels", "sample_batch"]
    fp = make_fingerprint("sinsemi", {"width": 16, "coarse_area": 300, "sample_batch": 4, "compile": True},
                          tiny_image, seed=0, max_steps=2)
    assert fp["params"] == {"coarse_area": 300, "width": 16}  # the config's values as given (stored files unchanged)


@pytest.mark.parametrize("bad,match", [
    (dict(width=15), "generator.width must be even"),
    (dict(lr=float("inf")), "generator.lr must be a finite number"),
    (dict(lr=float("nan")), "generator.lr must be a finite number > 0"),
    (dict(t_eps=0.5), "generator.t_eps must be a number > 0 and < 0.5"),
    (dict(ema_decay=1.0), "generator.ema_decay must be a number >= 0 and < 1"),
    (dict(milestones=[10, -1]), r"generator.milestones\[1\] must be an integer >= 0"),
    (dict(kernel="7"), None),  # a string of a known size is taken (as before)
    (dict(channels_last="yes"), "generator.channels_last must be true or false"),
])
def test_sinsemi_params_name_the_setting_and_its_range(bad, match):
    if match is None:
        assert parse_params("sinsemi", bad).kernel == 7
        return
    with pytest.raises(InputError, match=match):
        parse_params("sinsemi", bad)


def test_sampler_settings_are_one_dataclass():
    assert defaults(sampler_class("sinsemi")) == defaults(SinSEMISampler)
    s = parse_sampler("sinsemi", {"steps": 5, "guidance": 1, "allow_random_backbone": True})
    assert s.steps == 5 and s.guidance == 1.0 and isinstance(s.guidance, float) and s.allow_random_backbone
    for bad, match in ((dict(steps=0), "sampler.steps must be an integer > 0"),
                       (dict(coarse_steps=2.5), "sampler.coarse_steps must be an integer"),
                       (dict(guidance=float("inf")), "sampler.guidance must be a finite number"),
                       (dict(lpips_net="resnet"), "sampler.lpips_net must be one of alex, vgg, squeeze")):
        with pytest.raises(InputError, match=match):
            parse_sampler("sinsemi", bad)
    # a baseline's settings: its sample() keywords; the job's own allow_random_backbone is accepted
    assert defaults(sampler_class("sindiffusion")) == {"steps": None, "variance": "large"}
    parse_sampler("sindiffusion", {"steps": None, "allow_random_backbone": False})


def test_every_ema_range_is_checked_where_the_job_starts():
    for name in ("sinddm", "sindiffusion"):
        with pytest.raises(InputError, match="generator.ema_decay must be a number >= 0 and < 1"):
            build_generator(name, {"ema_decay": 1.5})


def test_speed_does_not_import_the_sinsemi_generator():
    import sinsemi.generators.speed as speed

    tree = ast.parse(inspect.getsource(speed))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "sinsemi.generators.sinsemi" not in mods


def test_a_parameter_added_later_at_its_default_keeps_a_run_s_fingerprint(tmp_path, tiny_image):
    """A run trained before an option existed resumes when the option is at its default (the old
    behaviour), and is refused when it is not."""
    from sinsemi.runs import check_fingerprint, write_fingerprint

    old = make_fingerprint("consingan", {"nfc": 8}, tiny_image, seed=0, max_steps=2)
    write_fingerprint(tmp_path, old)
    (tmp_path / "model").mkdir()
    assert check_fingerprint(tmp_path, make_fingerprint("consingan", {"nfc": 8, "batch_norm": False}, tiny_image,
                                                        seed=0, max_steps=2)) is False
    with pytest.raises(InputError, match="generator.batch_norm=None there, True here"):
        check_fingerprint(tmp_path, make_fingerprint("consingan", {"nfc": 8, "batch_norm": True}, tiny_image,
                                                     seed=0, max_steps=2))
    with pytest.raises(InputError, match="generator.nfc=8 there, 16 here"):
        check_fingerprint(tmp_path, make_fingerprint("consingan", {"nfc": 16}, tiny_image, seed=0, max_steps=2))
    # a key the run had and the new config lacks is still a difference
    write_fingerprint(tmp_path, make_fingerprint("consingan", {"nfc": 8, "batch_norm": False}, tiny_image,
                                                 seed=0, max_steps=2))
    with pytest.raises(InputError, match="generator.batch_norm=False there, None here"):
        check_fingerprint(tmp_path, old)
