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


# ----------------------------------------------------------------------------- official scale loss
def _official_reference(image: torch.Tensor, sizes, timesteps: int = 100, mode: str | None = None, wrap: bool = True):
    """An independent re-statement of the official rule (fallenshock/SinDDM, SinDDM/functions.py
    create_img_scales for L_s; SinDDM/models.py MultiScaleGaussianDiffusion for T[s] =
    argmax(sigma_t > L_s) with its cosine_beta_schedule): PIL images, numpy uint8 subtraction,
    norm over the array size. ``mode``: the PIL mode the file would be read in ("L" or "RGB");
    ``wrap=False``: a signed difference instead (to show that the wrap-around matters)."""
    import numpy as np
    from PIL import Image

    arr = np.floor(image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    if mode is not None:
        pil = pil.convert(mode)
    wh = [(w, h) for h, w in sizes]
    levels = [pil.resize(sz, Image.LANCZOS) for sz in wh]
    losses = []
    for i in range(len(sizes) - 1):
        recon = levels[i].resize(wh[i + 1], Image.BILINEAR)
        a, b = np.asarray(levels[i + 1]), np.asarray(recon)
        if not wrap:
            a, b = a.astype(np.int16), b.astype(np.int16)
        losses.append(np.linalg.norm(np.subtract(a, b)) / b.size)
    steps = timesteps + 1
    xs = np.linspace(0, steps, steps)
    ac = np.cos(((xs / steps) + 0.008) / 1.008 * np.pi * 0.5) ** 2
    betas = np.clip(1 - (ac / ac[0])[1:] / (ac / ac[0])[:-1], 0, 0.999)
    acp = np.cumprod(1 - betas)
    sigma = np.sqrt(1 - acp) / np.sqrt(acp)
    return losses, [int(np.argmax(sigma > L)) for L in losses]


def _fitted(tmp_path, image, **over):
    """A SinDDM fitted for one step (the scale losses are computed before training starts)."""
    params = {**_conf, "width": 16, "batch_size": 1, **over}
    gen = SinDDM(Runtime(progress=False, max_steps=1), **params)
    gen.fit(image, seed=0, out_dir=tmp_path)
    return gen


def _check_official(gen, image, expect_T=None):
    losses, T = _official_reference(image, gen.sizes, int(gen.params["timesteps"]))
    torch.testing.assert_close(gen.scale_losses.double(), torch.tensor(losses, dtype=torch.float64), rtol=1e-6, atol=0)
    assert [gen.start_step(s) for s in range(1, len(gen.sizes))] == T
    if expect_T is not None:
        assert T == expect_T
    return losses, T


def test_official_scale_loss_simulator_image(tmp_path):
    """The embedded default image at 96 px: T[s] = [62, 41] (the standardised rule: [2, 3])."""
    from sinsemi.data.optics import make_reference_pair

    image = make_reference_pair("line_pair", seed=0).defect
    gen = _fitted(tmp_path / "a", image)
    assert gen.sizes == [(55, 55), (73, 73), (96, 96)]
    losses, _ = _check_official(gen, image, expect_T=[62, 41])
    assert losses[0] > losses[1] > 0.5  # 8-bit units over the pixel count
    # the model's units are the raw intensities mapped [0, 1] -> [-1, 1], x_0 clipped to [-1, 1]
    torch.testing.assert_close(gen.std.forward(torch.tensor([[[0.0, 0.5, 1.0]]])), torch.tensor([[[-1.0, 0.0, 1.0]]]))
    assert gen.clip == (-1.0, 1.0)
    old = _fitted(tmp_path / "b", image, scale_loss="standardised")
    assert [old.start_step(s) for s in (1, 2)] == [2, 3]
    assert old.std.std.item() == pytest.approx(image.std().item(), rel=1e-4)


def test_official_scale_loss_synthetic_rgb_wraps(tmp_path):
    """A synthetic 3-channel image with sharp edges both ways (so the uint8 difference wraps)."""
    g = torch.Generator().manual_seed(3)
    image = torch.rand(3, 40, 48, generator=g).round() * 0.6 + 0.2 + 0.05 * torch.rand(3, 40, 48, generator=g)
    gen = _fitted(tmp_path, image, coarse_area=400, min_coarse=12, max_coarse=30, timesteps=50)
    assert len(gen.sizes) >= 3 and gen.sizes[-1] == (40, 48)
    losses, T = _check_official(gen, image)
    assert all(1 <= t < 50 for t in T)
    signed, _ = _official_reference(image, gen.sizes, 50, wrap=False)
    assert all(w > 1.5 * n for w, n in zip(losses, signed))  # the uint8 wrap-around is reproduced


def test_official_scale_loss_paper_image(tmp_path, real_pair_dir):
    """The paper's line-pair image (../shared; skipped without it): grey T[s] = [61, 43]; read as RGB
    by the official code (three equal channels) L_s shrinks by sqrt(3): T[s] = [43, 27]."""
    from sinsemi.data.io import load_image

    image = load_image(real_pair_dir / "line_pair_bridge_defect.png")
    gen = _fitted(tmp_path, image)
    losses, _ = _check_official(gen, image, expect_T=[61, 43])
    rgb_losses, rgb_T = _official_reference(image, gen.sizes, mode="RGB")
    torch.testing.assert_close(torch.tensor(rgb_losses), torch.tensor(losses) / 3 ** 0.5, rtol=1e-6, atol=0)
    assert rgb_T == [43, 27]


def test_scale_loss_option_is_checked():
    with pytest.raises(InputError, match="scale_loss"):
        SinDDM(**{**_conf, "scale_loss": "rms"})


def test_noise_at_official_noises_one_step_more(tmp_path, tiny_image, monkeypatch):
    """SinDDM/models.py p_sample_via_scale_loop: q_sample to T[s], then T[s] denoising steps from T[s] - 1."""
    from sinsemi.generators.common.diffusion import Schedule

    gen = _fit(tmp_path, tiny_image, max_steps=2)
    noised = []
    real = Schedule.q_sample
    monkeypatch.setattr(Schedule, "q_sample", lambda self, x0, t, noise: (noised.append(int(t[0])), real(self, x0, t, noise))[1])
    out = gen.sample([0], start_steps=[5, 3])
    assert noised == [5, 3] and out.nfe == gen.schedule.T + 5 + 3
    noised.clear()
    gen.sample([0], start_steps=[5, 3], noise_at="matched")
    assert noised == [4, 2]
    with pytest.raises(InputError, match="noise_at"):
        gen.sample([0], noise_at="t0")


def test_start_steps_setting(tmp_path, tiny_image):
    gen = _fit(tmp_path, tiny_image, max_steps=2)
    a = gen.sample([0], start_steps=[10, 10]).samples
    assert a.shape == (1, 1, 32, 32)
    with pytest.raises(InputError, match="start step"):
        gen.sample([0], start_steps=[0, 10])


# ----------------------------------------------------------------------------- contract (tiny profile)
globals().update(contract_tests(NAME, TINY, SAMPLER))
