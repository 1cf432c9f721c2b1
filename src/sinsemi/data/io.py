"""Image, mask and sample-bundle I/O with validation.

Inside the framework an image is a float32 tensor of shape (C, H, W): 8-bit and 16-bit images
are scaled to [0, 1] by their bit depth; float images (TIFF) keep their values, which must lie in
[0, 1] (a float image outside it is refused with its range, in training and evaluation alike:
scale it yourself, nothing here guesses a normalisation). An RGB image whose
three channels are identical becomes one channel; a genuinely colour image keeps its C channels
(the generators are channel-agnostic). 8-bit PNG only at the edges (:func:`save_png`).

Every writer is atomic (a temporary ``.<name>.partial-*`` beside the target, then ``os.replace``)
so an interrupted or failed write never leaves a half-written file behind; files get the mode
the umask allows (0644 under the usual 022), not mkstemp's 0600. Training checkpoints go through
:func:`save_checkpoint_file` (every generator's, Lightning's via ``AtomicCheckpointIO``), which has
the test hook ``$SINSEMI_TEST_PAUSE_IN_CHECKPOINT_WRITE`` (see there). Every problem raises :class:`sinsemi.errors.InputError`
with one sentence naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from sinsemi.errors import InputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
MAX_SIDE = 1024  # default limit on an input image's side (data.max_side)
FLOAT_TOL = 1e-6  # float pixels this far outside [0, 1] are rounding, not another scale
PARTIAL = ".partial-"  # marks the temporary files of atomic writes
#: test hooks (tests/test_kill.py only): seconds to pause inside every checkpoint write
#: (save_checkpoint_file) and between a set's sample PNGs and its grid (save_samples, sinsemi.streaming.draw_to_disk)
PAUSE_IN_CHECKPOINT_WRITE = "SINSEMI_TEST_PAUSE_IN_CHECKPOINT_WRITE"
PAUSE_BEFORE_GRID = "SINSEMI_TEST_PAUSE_BEFORE_GRID"
PAUSE_MARKER = "sinsemi-test: paused"  # starts the stderr line that says a pause has begun


# ----------------------------------------------------------------------------- reading
def _read_array(path: Path) -> np.ndarray:
    """Raw pixel array (H, W) or (H, W, C) from disk, as stored."""
    if not path.exists():
        _check_link(path)
        raise InputError(f"image file not found: {path}")
    if path.is_dir():
        raise InputError(f"expected an image file but got a directory: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"image file is empty (0 bytes): {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()  # forces a full decode: a truncated PNG fails here
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    im = im.convert("RGB")
                elif im.mode == "1":
                    im = im.convert("L")
                arr = np.array(im)
    except InputError:
        raise
    except Exception as e:  # PIL/tifffile raise many types for corrupt data
        raise InputError(f"cannot read image {path}: not a readable image or truncated ({type(e).__name__}: {e})") from None
    return arr


def _check_link(path: Path) -> None:
    """A path that does not resolve because of a symlink says so (``exists`` reads a loop, or a
    link to nothing, as plain "not there"), naming the link."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"image path {path} is a symlink loop (a link that points back to itself, directly or "
                             "through other links): point it at a real file") from None
    if path.is_symlink():
        raise InputError(f"image path {path} is a symlink to {os.readlink(path)}, which does not exist") from None


def _to_float(arr: np.ndarray, path: Path) -> np.ndarray:
    """Scale integer pixels to [0, 1] by bit depth; check float pixels are finite."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype in (np.uint8, np.int8):
            return arr.astype(np.float32) / 255.0
        if arr.dtype == np.uint16 or (arr.size and arr.max() <= 65535 and arr.min() >= 0):
            # PIL reads 16-bit PNGs as int32 ("I" mode): treat values as 16-bit.
            return arr.astype(np.float32) / 65535.0
        raise InputError(f"unsupported integer pixel range in {path}: {arr.min()}..{arr.max()}")
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            n_bad = int((~np.isfinite(arr)).sum())
            raise InputError(f"image {path} holds {n_bad} NaN/inf pixel value(s)")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -FLOAT_TOL or hi > 1 + FLOAT_TOL:
            raise InputError(f"float image {path} has values in [{lo:.6g}, {hi:.6g}], outside [0, 1]: float pixels are "
                             "used as they are, so scale the image to [0, 1] first (or save it as 8/16-bit)")
        return arr
    raise InputError(f"unsupported pixel type {arr.dtype} in {path}")


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Load a PNG/TIFF (8/16-bit or float; L, RGB or RGBA) as a float32 tensor (C, H, W).

    Alpha is dropped; RGB with identical channels becomes a single gray channel.
    """
    path = Path(path)
    arr = _read_array(path)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar TIFF (C, H, W)
    if arr.ndim != 3:
        raise InputError(f"image {path} has unsupported shape {arr.shape} (expected H x W or H x W x C)")
    if arr.shape[2] in (2, 4):  # LA / RGBA: the generators learn intensity, not transparency
        _warn_alpha(path, arr[:, :, -1])
        arr = arr[:, :, :-1]
    if arr.shape[2] == 3 and np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 0], arr[:, :, 2]):
        arr = arr[:, :, :1]
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"image {path} has no pixels (shape {arr.shape})")
    out = _to_float(np.ascontiguousarray(arr), path)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(out, -1, 0))).float()


def _warn_alpha(path: Path, alpha: np.ndarray) -> None:
    """One warning line naming the file whose alpha channel (H, W) is dropped, and how many of its
    pixels were not opaque (what the drop loses: nothing when 0)."""
    opaque = np.iinfo(alpha.dtype).max if np.issubdtype(alpha.dtype, np.integer) else 1.0
    clear = int((alpha != opaque).sum())
    logging.getLogger("sinsemi.io").warning("image %s has an alpha channel: dropped (%d of %d pixels were not opaque)",
                                            path, clear, alpha.size)


def load_mask(path: str | os.PathLike, like: torch.Tensor | None = None) -> torch.Tensor:
    """Load a binary defect mask (0/255 or 0/1) as a bool tensor (H, W).

    With ``like`` (an image (C, H, W)), the mask must have the image's size.
    """
    path = Path(path)
    arr = _read_array(path)
    if arr.ndim == 3:
        if not all(np.array_equal(arr[:, :, 0], arr[:, :, c]) for c in range(arr.shape[2] if arr.shape[2] != 4 else 3)):
            raise InputError(f"mask {path} is a colour image; a mask must be single-channel binary (0/255)")
        arr = arr[:, :, 0]
    values = np.unique(arr)
    if not set(values.tolist()) <= {0, 1, 255, True, False} and not set(values.tolist()) <= {0.0, 1.0}:
        raise InputError(f"mask {path} is not binary: found values {values[:8].tolist()} (expected 0 and 255)")
    mask = torch.from_numpy(arr > 0)
    if like is not None and tuple(mask.shape) != tuple(like.shape[-2:]):
        raise InputError(f"mask {path} is {tuple(mask.shape)} but its image is {tuple(like.shape[-2:])}")
    return mask


def list_images(directory: str | os.PathLike, *, exclude_masks: bool = True) -> tuple[list[Path], list[Path]]:
    """Image files in ``directory`` in sorted order, and the non-image files skipped.

    Files named ``*_mask.*`` are left out when ``exclude_masks``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"not a directory: {directory}")
    images, skipped = [], []
    for p in sorted(directory.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if exclude_masks and p.stem.endswith("_mask"):
                continue
            images.append(p)
        elif p.suffix.lower() not in (".json", ".npz", ".pt", ".md", ".csv", ".yaml"):
            skipped.append(p)
    return images, skipped


def load_image_dir(directory: str | os.PathLike, *, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """All images of a directory as one tensor (N, C, H, W) and their file names (sorted).

    Non-image files are skipped with a warning that lists them. Raises when the directory holds
    no image, when sizes or channels differ, or when ``limit`` exceeds the images available.
    """
    files, skipped = list_images(directory)
    if skipped:
        warnings.warn(f"skipping {len(skipped)} non-image file(s) in {directory}: {[p.name for p in skipped][:10]}", stacklevel=2)
    if not files:
        raise InputError(f"no images found in {directory}")
    if limit is not None:
        if limit > len(files):
            raise InputError(f"asked for {limit} images but {directory} holds only {len(files)}")
        files = files[:limit]
    imgs = [load_image(p) for p in files]
    shape0 = imgs[0].shape
    for p, im in zip(files, imgs):
        if im.shape != shape0:
            raise InputError(f"images in {directory} differ in size/channels: {files[0].name} is {tuple(shape0)}, {p.name} is {tuple(im.shape)}")
    return torch.stack(imgs), [p.name for p in files]


# ----------------------------------------------------------------------------- validation
def check_trainable(image: torch.Tensor, *, name: str = "training image") -> torch.Tensor:
    """Check a (C, H, W) image can be standardised: finite and not constant in any channel."""
    if image.ndim != 3:
        raise InputError(f"{name} must have shape (C, H, W), got {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise InputError(f"{name} holds NaN/inf values")
    std = image.flatten(1).double().std(dim=1)  # float64: a constant float32 image has a float32 std of ~3e-8
    if (std <= 1e-8).any():
        raise InputError(f"{name} is constant (std 0 in channel(s) {torch.nonzero(std <= 1e-8).flatten().tolist()}): nothing to learn and standardising would divide by zero")
    return image


def check_size(image: torch.Tensor, max_side: int | None = MAX_SIDE, *, name: str = "image",
               setting: str = "data.max_side") -> torch.Tensor:
    """Refuse an image with a side over ``max_side`` (None: no limit): one-shot generators scale
    with the pixel count (a 4000 px image trains for days), so a large input must be meant."""
    if max_side is not None and max(image.shape[-2:]) > int(max_side):
        h, w = image.shape[-2:]
        raise InputError(f"{name} is {h}x{w} px, over the limit of {int(max_side)} px a side ({setting}={int(max_side)}): "
                         f"crop or downscale it, or raise {setting}")
    return image


def load_trainable(path: str | os.PathLike, *, max_side: int | None = MAX_SIDE, name: str | None = None,
                   setting: str = "data.max_side") -> torch.Tensor:
    """An image that can be learnt from or compared against: loaded, within the size limit, not constant."""
    img = load_image(path)
    check_size(img, max_side, name=name or str(path), setting=setting)
    return check_trainable(img, name=name or str(path))


# ----------------------------------------------------------------------------- writing
def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check it is writable; raise one clear error otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create output directory {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"output directory is not writable: {path}")
    return path


def current_umask() -> int:
    """The process umask, read without changing it (os.umask would, briefly, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix: writers that infer the format from it
    work); on success move it into place with the umask's mode, else delete it."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{PARTIAL}", suffix=path.suffix or ".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # the user's disk, not a bug: one line, exit 2
            raise InputError(f"cannot write {path}: {os.strerror(e.errno)} (nothing half-written is left; "
                             "free space, or write to another output dir)") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _test_pause_seconds(hook: str) -> float:
    """The pause a test hook asks for (0: unset, the case outside tests)."""
    value = os.environ.get(hook, "")
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise InputError(f"{hook} must be a number of seconds >= 0, got {value!r}")
    return seconds


def _test_pause(seconds: float, where: str) -> None:
    print(f"{PAUSE_MARKER} {where}", file=sys.stderr, flush=True)
    time.sleep(seconds)


def save_checkpoint_file(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` into ``path`` atomically: until the new file is complete the previous
    checkpoint stays whole, and a killed write leaves only a ``.<name>.partial-*`` temp beside it
    (removed by :func:`remove_partials` when the job is started again). Deterministic: the same
    ``obj`` gives the same bytes, whatever the path.

    Test hook, for tests that kill a job inside a checkpoint write: with
    ``$SINSEMI_TEST_PAUSE_IN_CHECKPOINT_WRITE=<seconds>`` every checkpoint write puts the first half
    of its bytes into the temp file, prints ``PAUSE_MARKER in checkpoint write <temp path>`` to stderr, sleeps that
    long, then writes the rest and renames. Unset (always, outside tests) it costs nothing.
    """
    pause = _test_pause_seconds(PAUSE_IN_CHECKPOINT_WRITE)
    with atomic_path(path) as tmp:
        if not pause:
            # through a file object: torch.save(obj, <path>) names the archive inside the zip after the
            # (random) temp file, so identical states would differ byte-wise; a file object gets the
            # fixed name "archive", and the serialization id torch derives from names + CRCs follows
            with open(tmp, "wb") as f:
                torch.save(obj, f)
        else:
            from io import BytesIO

            buf = BytesIO()
            torch.save(obj, buf)
            data = buf.getvalue()
            with open(tmp, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                _test_pause(pause, f"in checkpoint write {tmp}")
                f.write(data[len(data) // 2:])
    return Path(path)


def remove_partials(directory: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Delete the temporary files that killed atomic writes left under ``directory`` (recursively,
    or only directly in it). Only for a directory one job owns (a run dir at job start, under its
    :func:`sinsemi.runlock.run_lock`): another writer's file would go too."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    gone = []
    for p in (directory.rglob if recursive else directory.glob)(f".*{PARTIAL}*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def to_uint8(image: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(C, H, W) float tensor -> (H, W) or (H, W, C) uint8 array, clipped to ``value_range``."""
    lo, hi = value_range
    x = ((image.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    arr = (x * 255.0 + 0.5).to(torch.uint8).numpy()
    arr = np.moveaxis(arr, 0, -1)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def save_png(image: torch.Tensor, path: str | os.PathLike, *, value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Write a (C, H, W) image (C = 1 or 3) as an 8-bit PNG, atomically."""
    from PIL import Image

    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise InputError(f"save_png needs a (1|3, H, W) tensor, got {tuple(image.shape)}")
    arr = to_uint8(image, value_range)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return Path(path)


def save_mask(mask: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a binary (H, W) mask as an 8-bit PNG with values 0/255, atomically."""
    from PIL import Image

    arr = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(bool)
    if arr.ndim != 2:
        raise InputError(f"mask must be (H, W), got {arr.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray((arr * 255).astype(np.uint8)).save(tmp, format="PNG")
    return Path(path)


def save_json(obj, path: str | os.PathLike) -> Path:
    """Write JSON atomically (sorted keys, indented)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def save_bundle(samples: torch.Tensor, path: str | os.PathLike, **meta) -> Path:
    """Lossless float32 bundle (``.npz``): ``images`` (N, C, H, W) plus JSON ``meta``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=samples.detach().float().cpu().numpy(), meta=json.dumps(meta, default=_json_default))
    return Path(path)


def write_bundle(path: str | os.PathLike, shape: Sequence[int], chunks: Iterable[np.ndarray], **meta) -> Path:
    """The bundle :func:`save_bundle` writes (the same bytes), from ``chunks`` of float32 samples
    (n_k, C, H, W) whose n_k add up to ``shape[0]`` (``shape``: (N, C, H, W)): one chunk is in memory
    at a time, so memory does not grow with N.

    Same bytes: ``np.savez_compressed`` is a zip (deflate, zip64 forced, the zip epoch as the date)
    of ``images.npy`` and ``meta.npy``; deflate's output does not depend on how its input is split."""
    import zipfile

    shape = tuple(int(s) for s in shape)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": shape}
    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f, \
            zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        with zf.open("images.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)  # numpy's choice too (2.0 only for huge headers)
            for chunk in chunks:
                chunk = np.ascontiguousarray(chunk, dtype="<f4")
                if tuple(chunk.shape[1:]) != shape[1:]:
                    raise ValueError(f"write_bundle: a chunk of shape {chunk.shape} in a bundle of {shape}")
                member.write(chunk.tobytes())
                written += chunk.shape[0]
        if written != shape[0]:
            raise ValueError(f"write_bundle: {written} samples for a bundle of {shape[0]}")
        with zf.open("meta.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asanyarray(json.dumps(meta, default=_json_default)), allow_pickle=False)
    return Path(path)


def load_bundle(path: str | os.PathLike) -> tuple[torch.Tensor, dict]:
    """Read a bundle written by :func:`save_bundle`: (images (N, C, H, W), meta)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"sample bundle not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            images = torch.from_numpy(z["images"]).float()
            meta = json.loads(str(z["meta"])) if "meta" in z else {}
    except Exception as e:
        raise InputError(f"cannot read sample bundle {path}: {type(e).__name__}: {e}") from None
    return images, meta


def save_grid(samples: torch.Tensor, path: str | os.PathLike, *, nrow: int | None = None, value_range=(0.0, 1.0), padding: int = 2) -> Path:
    """Write samples (N, C, H, W) as one PNG grid (8-bit)."""
    from torchvision.utils import make_grid

    n = samples.shape[0]
    nrow = nrow or max(1, int(np.ceil(np.sqrt(n))))
    lo, hi = value_range
    x = ((samples.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    if x.shape[1] not in (1, 3):
        x = x[:, :1]
    grid = make_grid(x, nrow=nrow, padding=padding, pad_value=1.0)
    if samples.shape[1] == 1:
        grid = grid[:1]
    return save_png(grid, path)


def save_samples(samples: torch.Tensor, out_dir: str | os.PathLike, *, seeds: Sequence[int] | None = None,
                 value_range=(0.0, 1.0), meta: dict | None = None, grid_path: str | os.PathLike | None = None,
                 grid_range: tuple[float, float] | None = None) -> Path:
    """Write samples (N, C, H, W): one 8-bit PNG each (``00000.png`` …), a grid PNG (default
    ``out_dir/grid.png``), contrast-stretched to ``grid_range`` when given (low-contrast optical
    images look flat grey otherwise), and last ``samples.npz`` (float32, lossless, with the seeds and
    ``meta``): its presence means every other file is there."""
    out_dir = ensure_dir(out_dir)
    n = samples.shape[0]
    seeds = list(seeds) if seeds is not None else list(range(n))
    for i in range(n):
        img = samples[i]
        if img.shape[0] not in (1, 3):
            img = img[:1]
        save_png(img, out_dir / f"{i:05d}.png", value_range=value_range)
    pause = _test_pause_seconds(PAUSE_BEFORE_GRID)
    if pause:  # test hook: a kill lands after the PNGs, before the grid and the bundle
        _test_pause(pause, f"before the grid of {out_dir}")
    save_grid(samples[: min(n, 64)], grid_path or (out_dir / "grid.png"), value_range=grid_range or value_range)
    save_bundle(samples, out_dir / "samples.npz", seeds=seeds, value_range=list(value_range), **(meta or {}))
    return out_dir


def load_samples(path: str | os.PathLike, *, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Samples of any generator: a ``.npz`` bundle, a directory holding ``samples.npz`` (preferred:
    lossless), or a directory of images. Returns (N, C, H, W) and names."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        images, _ = load_bundle(path)
        names = [f"{i:05d}" for i in range(images.shape[0])]
    elif path.is_dir() and (path / "samples.npz").exists():
        images, _ = load_bundle(path / "samples.npz")
        names = [f"{i:05d}.png" for i in range(images.shape[0])]
    elif path.is_dir():
        return load_image_dir(path, limit=limit)
    else:
        raise InputError(f"samples not found: {path} (expected a directory of images or a .npz bundle)")
    if images.shape[0] == 0:
        raise InputError(f"no samples in {path}")
    if limit is not None:
        if limit > images.shape[0]:
            raise InputError(f"asked for {limit} samples but {path} holds only {images.shape[0]}")
        images, names = images[:limit], names[:limit]
    return images, names


def display_range(x: torch.Tensor, q: float = 0.005) -> tuple[float, float]:
    """A robust (low, high) intensity range for display: the q and 1-q quantiles of ``x``."""
    flat = x.detach().float().flatten()
    if flat.numel() > 1_000_000:
        flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    lo, hi = torch.quantile(flat, torch.tensor([q, 1 - q])).tolist()
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)
