"""SinDDM: pyramid, gamma schedule, the paper net's size, and the generator contract on a tiny image."""

from __future__ import annotations

from importlib.resources import files

import pytest
import torch
import yaml

from sinsemi.errors import InputError
from tests._diffusion_contract import contract_tests
from sinsemi.generators.base import Runtime, build_generator, generator_class, write_model
from sinsemi.generators.sinddm import SinDDM
from sinsemi.nets.sinddm import SinDDMNet

NAME = "sinddm"
CONF = files("sinsemi.conf")
_conf = yaml.safe_load((CONF / "generator" / f"{NAME}.yaml").read_text())
_conf.pop("name")
TINY = {**_conf, **yaml.safe_load((CONF / "generator_profile" / NAME / "tiny.yaml").read_text())["generator"]}
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
    a = gen.sample([0], start_steps=[10, 10]).samples
    assert a.shape == (1, 1, 32, 32)
    with pytest.raises(InputError, match="start step"):
        gen.sample([0], start_steps=[0, 10])


# ----------------------------------------------------------------------------- contract (tiny profile)
globals().update(contract_tests(NAME, TINY, SAMPLER))
