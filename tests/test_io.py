"""Image I/O: formats, bit depths, channels, and every bad input giving one clear InputError."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from sinsemi.data.io import check_trainable, ensure_dir, load_image, load_mask, save_json, save_mask, save_png
from sinsemi.data.pyramid import pyramid_sizes
from sinsemi.errors import InputError


def _png(path, arr, mode=None):
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


# ----------------------------------------------------------------------------- formats
def test_8bit_gray_png_to_unit_range(tmp_path):
    arr = np.arange(96 * 96, dtype=np.uint32).reshape(96, 96) % 256
    img = load_image(_png(tmp_path / "g.png", arr.astype(np.uint8)))
    assert img.shape == (1, 96, 96) and img.dtype == torch.float32
    assert float(img.max()) == 1.0 and float(img.min()) == 0.0
    assert torch.allclose(img[0] * 255, torch.from_numpy(arr).float())


def test_16bit_png_and_tiff_to_unit_range(tmp_path):
    arr = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    png = load_image(_png(tmp_path / "g16.png", arr))
    tif = tmp_path / "g16.tif"
    tifffile.imwrite(tif, arr)
    for img in (png, load_image(tif)):
        assert img.shape == (1, 64, 64)
        assert abs(float(img.max()) - 1.0) < 1e-6 and float(img.min()) == 0.0
        assert torch.allclose(img[0], torch.from_numpy(arr.astype(np.float32) / 65535.0), atol=1e-6)


def test_float_tiff_keeps_values(tmp_path):
    arr = np.random.default_rng(0).uniform(size=(48, 48)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", arr)
    assert torch.allclose(load_image(tmp_path / "f.tif")[0], torch.from_numpy(arr))


@pytest.mark.parametrize("lo,hi", [(-0.5, 0.5), (0.0, 255.0), (0.2, 1.01)])
def test_float_tiff_outside_unit_range_is_refused_with_its_range(tmp_path, lo, hi):
    arr = np.linspace(lo, hi, 48 * 48, dtype=np.float32).reshape(48, 48)
    tifffile.imwrite(tmp_path / "f.tif", arr)
    with pytest.raises(InputError, match=rf"values in \[{lo:.6g}, {hi:.6g}\], outside \[0, 1\]"):
        load_image(tmp_path / "f.tif")


def test_rgb_with_identical_channels_becomes_gray(tmp_path):
    g = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    img = load_image(_png(tmp_path / "rgb.png", np.stack([g, g, g], -1)))
    assert img.shape == (1, 48, 48) and torch.allclose(img[0] * 255, torch.from_numpy(g).float())


def test_rgba_drops_alpha(tmp_path):
    g = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    alpha = np.full_like(g, 128)
    assert load_image(_png(tmp_path / "ga.png", np.stack([g, g, g, alpha], -1))).shape == (1, 48, 48)
    rgb = np.random.default_rng(2).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    img = load_image(_png(tmp_path / "ca.png", np.concatenate([rgb, alpha[..., None]], -1)))
    assert img.shape == (3, 48, 48) and torch.allclose(img * 255, torch.from_numpy(rgb).permute(2, 0, 1).float())


def test_true_colour_keeps_three_channels(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    img = load_image(_png(tmp_path / "c.png", rgb))
    assert img.shape == (3, 40, 56)


def test_save_png_round_trip_is_atomic(tmp_path):
    img = torch.rand(1, 32, 32)
    p = save_png(img, tmp_path / "out" / "x.png")
    back = load_image(p)
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6
    assert [q.name for q in (tmp_path / "out").iterdir()] == ["x.png"]  # no temp file left


# ----------------------------------------------------------------------------- bad inputs
def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_not_an_image(tmp_path):
    p = tmp_path / "text.png"
    p.write_text("this is not a PNG\n")
    with pytest.raises(InputError, match="cannot read image"):
        load_image(p)


def test_truncated_png(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (96, 96), dtype=np.uint8)
    full = _png(tmp_path / "full.png", arr).read_bytes()
    p = tmp_path / "trunc.png"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(InputError, match="truncated|cannot read"):
        load_image(p)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(p)


def test_image_smaller_than_the_coarsest_pyramid_level(tmp_path):
    img = load_image(_png(tmp_path / "small.png", np.zeros((30, 30), np.uint8) + np.arange(30, dtype=np.uint8)))
    with pytest.raises(InputError, match="smaller than the coarsest pyramid level"):
        pyramid_sizes(*img.shape[-2:], 1.4)


def test_constant_image_is_not_trainable(tmp_path):
    img = load_image(_png(tmp_path / "const.png", np.full((96, 96), 77, np.uint8)))
    with pytest.raises(InputError, match="constant"):
        check_trainable(img)
    check_trainable(load_image(_png(tmp_path / "ok.png", np.arange(96 * 96).reshape(96, 96).astype(np.uint8))))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_float_tiff(tmp_path, bad):
    arr = np.ones((48, 48), np.float32)
    arr[3, 4] = bad
    tifffile.imwrite(tmp_path / "bad.tif", arr)
    with pytest.raises(InputError, match="NaN/inf"):
        load_image(tmp_path / "bad.tif")


def test_mask_of_another_size(tmp_path):
    img = load_image(_png(tmp_path / "img.png", np.arange(96 * 96).reshape(96, 96).astype(np.uint8)))
    m = np.zeros((64, 64), np.uint8)
    m[10:20, 10:20] = 255
    with pytest.raises(InputError, match=r"\(64, 64\).*\(96, 96\)"):
        load_mask(_png(tmp_path / "m.png", m), like=img)


def test_non_binary_mask(tmp_path):
    m = np.zeros((96, 96), np.uint8)
    m[10:20, 10:20] = 128
    m[30:40, 30:40] = 255
    with pytest.raises(InputError, match="not binary"):
        load_mask(_png(tmp_path / "m.png", m))


def test_binary_mask_loads(tmp_path):
    m = np.zeros((96, 96), bool)
    m[10:20, 30:45] = True
    save_mask(torch.from_numpy(m), tmp_path / "m.png")
    assert np.array_equal(load_mask(tmp_path / "m.png").numpy(), m)


def test_unwritable_output_dir(tmp_path):
    # tests run as root, for whom chmod does not block writing: use a path under a regular file
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create output directory"):
        ensure_dir(blocker / "sub")
    with pytest.raises(InputError, match="cannot create output directory"):
        save_png(torch.rand(1, 8, 8), blocker / "sub" / "x.png")
    with pytest.raises(InputError):
        save_json({"a": 1}, blocker / "sub" / "meta.json")
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_size_limit_names_the_setting(tmp_path):
    from sinsemi.data.io import check_size, load_trainable

    p = _png(tmp_path / "big.png", (np.arange(40 * 50) % 256).astype(np.uint8).reshape(40, 50))
    with pytest.raises(InputError, match=r"40x50 px, over the limit of 32 px a side \(data.max_side=32\)"):
        load_trainable(p, max_side=32)
    assert load_trainable(p, max_side=50).shape == (1, 40, 50)
    assert check_size(torch.zeros(1, 2000, 10), None) is not None  # null: no limit
    with pytest.raises(InputError, match="constant"):
        load_trainable(_png(tmp_path / "c.png", np.full((20, 20), 9, np.uint8)))


def test_atomic_writes_respect_the_umask_and_leave_no_temp_files(tmp_path):
    from sinsemi.data.io import atomic_path, remove_partials

    old = os.umask(0o022)
    try:
        save_json({"a": 1}, tmp_path / "m.json")
        assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
        os.umask(0o077)
        save_json({"a": 1}, tmp_path / "private.json")
        assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "sub" / "x.bin") as tmp:
            assert tmp.parent == tmp_path / "sub"  # beside its target: os.replace never crosses filesystems
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list((tmp_path / "sub").iterdir()) == []
    # what a kill -9 leaves behind is swept up at the next job start
    (tmp_path / "sub" / ".last.pt.partial-abc.pt").write_bytes(b"")
    (tmp_path / ".hidden-but-ours.json").write_text("{}")
    assert [p.name for p in remove_partials(tmp_path)] == [".last.pt.partial-abc.pt"]
    assert (tmp_path / ".hidden-but-ours.json").exists()


def test_checkpoint_write_test_hook_and_an_interrupted_write(tmp_path, monkeypatch, capsys):
    """The hook tests/test_kill.py kills inside: half the bytes in the temp, a marker, a pause. A
    signal raised in the pause (SIGTERM) removes the temp; the previous checkpoint stays whole."""
    import sinsemi.data.io as io

    target = tmp_path / "checkpoints" / "last.pt"
    io.save_checkpoint_file({"step": 1}, target)
    old = target.read_bytes()
    monkeypatch.setenv(io.PAUSE_IN_CHECKPOINT_WRITE, "0.01")
    seen = {}

    def interrupted(seconds):
        (tmp,) = target.parent.glob(".last.pt.partial-*")
        seen.update(size=tmp.stat().st_size, seconds=seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(io.time, "sleep", interrupted)
    new = {"step": 2, "w": torch.arange(4096.0)}
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint_file(new, target)
    err = capsys.readouterr().err
    assert err.startswith(f"{io.PAUSE_MARKER} in checkpoint write ") and ".last.pt.partial-" in err and seen["seconds"] == 0.01
    assert 0 < seen["size"] < 4096 * 4  # half-written when the pause began
    assert target.read_bytes() == old and sorted(p.name for p in target.parent.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    monkeypatch.setenv(io.PAUSE_IN_CHECKPOINT_WRITE, "0")  # 0: no pause
    io.save_checkpoint_file(new, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], new["w"])
    monkeypatch.setenv(io.PAUSE_IN_CHECKPOINT_WRITE, "soon")
    with pytest.raises(InputError, match="SINSEMI_TEST_PAUSE_IN_CHECKPOINT_WRITE must be a number of seconds"):
        io.save_checkpoint_file(new, target)


def test_lightning_checkpoints_are_written_atomically_beside_the_target(tmp_path, monkeypatch):
    import sinsemi.data.io as io
    from sinsemi.generators.sinsemi_module import AtomicCheckpointIO

    calls = []
    monkeypatch.setattr(io, "atomic_path", lambda path, real=io.atomic_path: calls.append(path) or real(path))
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, tmp_path / "c" / "last.ckpt")
    assert calls == [tmp_path / "c" / "last.ckpt"]
    assert torch.load(tmp_path / "c" / "last.ckpt", weights_only=True) == {"global_step": 3}
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["last.ckpt"]
    with pytest.raises(TypeError, match="storage_options"):
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "x.ckpt", storage_options={"a": 1})


def test_save_samples_writes_the_bundle_last(tmp_path, monkeypatch):
    import sinsemi.data.io as io

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "save_grid", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_samples(torch.rand(3, 1, 8, 8), tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["00000.png", "00001.png", "00002.png"]
