"""The generator interface, the registry, and what every generator shares.

Evaluation, sweeps and reports see only :class:`OneShotGenerator` and the registry; they never
import a concrete generator. A generator is built from its config as ``cls(runtime=..., **params)``
where ``params`` is ``cfg.generator`` without ``name`` (primitives only), and is saved as a
directory holding ``generator.json`` (name, params, format) and ``state.pt`` (tensors only, loaded
with ``weights_only=True``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from sinsemi.errors import InputError, pickle_refusal

from sinsemi.generators.registry import GENERATORS, generator_class  # noqa: F401  (the registry; re-exported)

MODEL_FORMAT = 1


@dataclass
class Runtime:
    """How to run (not what to learn): device, precision, iteration budget, logging.

    ``max_steps``: overrides the generator's own iteration budget (``trainer.max_steps``); what a
    "step" is is documented per generator. ``logger``: anything with Lightning's
    ``log_metrics(dict, step)`` (e.g. a ``WandbLogger``), or ``None``.
    """

    device: str = "cpu"
    precision: str = "32-true"  # Lightning's names: "32-true", "bf16-mixed", "16-mixed"
    max_steps: int | None = None
    progress: bool = True
    logger: Any = None
    log_every: int = 50
    checkpoint_every: int = 500
    keep_checkpoints: bool = False  # keep every step checkpoint (training curves), not only the last
    #: fractions of the fit's budget at which a step-based fit (SinSEMI, the diffusion baselines) also
    #: writes its model as it stands, a loadable model dir ``snapshots/step<k>/`` (the budget curves)
    snapshots: tuple[float, ...] = ()
    resume: bool = True
    detect_anomaly: bool = False  # torch's autograd anomaly detection during fit (debug=...; slow)
    #: a checkpoint file to start from when the run dir has none of its own (``ckpt_path=<file>``);
    #: the run's own ``checkpoints/last.*`` wins once it exists, so a requeued job keeps its progress
    resume_from: str | None = None
    trainer_kwargs: dict = field(default_factory=dict)  # extra Lightning Trainer arguments
    #: Lightning callbacks of a Lightning fit (SinSEMI), built from the ``callbacks`` config group;
    #: None: the generator's own default (a ModelCheckpoint into ``checkpoints/``)
    callbacks: list | None = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if self.logger is not None:
            self.logger.log_metrics(dict(metrics), step=step)


#: the folder of a run dir that holds the budget snapshots (``snapshots/step<k>/``, model dirs)
SNAPSHOTS = "snapshots"


def snapshot_steps(fractions, total: int) -> list[int]:
    """The steps of a ``total``-step fit at which the model is snapshotted: ``round(f * total)`` for
    each fraction f in (0, 1), the final step excluded (that is the model itself)."""
    return sorted({round(float(f) * total) for f in fractions if 0 < float(f) < 1} - {0, total})


def resume_source(own: str | Path, runtime: Runtime) -> Path | None:
    """The checkpoint a fit resumes from: the run dir's own ``own`` file when it exists, else
    ``runtime.resume_from`` (``ckpt_path=<file>``), else None (start fresh; always None without
    ``runtime.resume``). One rule for every generator that checkpoints."""
    own = Path(own)
    if not runtime.resume:
        return None
    if own.exists():
        return own
    return Path(runtime.resume_from) if runtime.resume_from else None


@dataclass(frozen=True)
class SampleOutput:
    """What :meth:`OneShotGenerator.sample` returns.

    ``samples``: (N, C, H, W) float32 in the training image's intensity scale, N = len(seeds).
    ``nfe``: network evaluations per sample, for a generator with a net (SinSEMI: steps x scales;
    SinGAN: one per scale; ConSinGAN: 1, its one growing generator; the diffusion baselines: the
    denoising steps, over all scales for SinDDM); None for the training-free GPNN and GPDM.
    ``clamped_pixels``: values of ``samples`` that were clamped into the output range at the end
    (SinSEMI: [0, 1]; SinGAN and ConSinGAN: the official [-1, 1] before mapping back); 0 where the
    output is not clamped (clipping inside a method's own steps, e.g. DDPM's x_0 clip, not counted).
    ``intermediates``: the result at every scale (coarsest first, each (N, C, h_s, w_s), image
    scale) when asked with ``keep_intermediates=True`` (SinSEMI); else empty.
    ``info``: primitive sampler facts for metadata (SinSEMI: steps, kind, coarse, guidance, noise,
    lpips_net, random_backbone); empty for the others.
    """

    samples: torch.Tensor
    nfe: int | None = None
    clamped_pixels: int = 0
    intermediates: list[torch.Tensor] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def sample_info(self) -> dict[str, Any] | None:
        """The ``sample_info`` recorded with the samples: nfe, clamped_pixels and ``info`` for a
        generator that reports sampler facts, None for one that does not (as before this type)."""
        if not self.info:
            return None
        return {"nfe": self.nfe, **self.info, "clamped_pixels": self.clamped_pixels}


@runtime_checkable
class OneShotGenerator(Protocol):
    """A generator that learns from one image and samples many.

    Images are float32 tensors (C, H, W) / (N, C, H, W) in the training image's own intensity scale
    (8/16-bit images are in [0, 1], see :mod:`sinsemi.data.io`).
    """

    name: str
    #: whether :meth:`fit` can start from a checkpoint file (``runtime.resume_from``, ``ckpt_path=<file>``);
    #: False for the training-free generators, which have no checkpoints
    resumes_from_file: bool

    def fit(self, image: torch.Tensor, *, seed: int, out_dir: str | Path) -> None:
        """Learn from ``image`` (C, H, W). Checkpoints go under ``out_dir/checkpoints``; a fit with
        a checkpoint there resumes from it (when ``runtime.resume``), else from
        ``runtime.resume_from`` when set (see :func:`resume_source`)."""

    def sample(self, seeds: Sequence[int], **settings: Any) -> SampleOutput:
        """One sample per seed: ``samples`` (len(seeds), C, H, W); sample i draws all its randomness
        from ``seeds[i]``. ``settings``: the generator's sampler knobs (``cfg.sampler``)."""

    def save(self, directory: str | Path) -> None:
        """Write ``generator.json`` + ``state.pt`` into ``directory``."""

    @classmethod
    def load(cls, directory: str | Path, *, runtime: Runtime | None = None) -> "OneShotGenerator":
        """Rebuild a fitted generator saved by :meth:`save`."""


def check_devices(name: str, devices: int) -> None:
    """Refuse ``trainer.devices`` > 1 for a generator that cannot use them: only a class with
    ``supports_ddp = True`` (SinSEMI, through Lightning's DDP) trains on several devices; the
    baselines' hand-written loops would run the same job on every rank."""
    if int(devices) > 1 and not getattr(generator_class(name), "supports_ddp", False):
        ddp = sorted(n for n in GENERATORS if getattr(generator_class(n), "supports_ddp", False))
        raise InputError(f"generator '{name}' trains on one device (its own training loop, no DDP): "
                         f"trainer.devices={devices} is not supported; use trainer.devices=1 "
                         f"(multi-device training: {', '.join(ddp)})")


def build_generator(name: str, params: Mapping[str, Any] | None = None, runtime: Runtime | None = None):
    """Instantiate generator ``name`` with ``params`` (its config without ``name``), checked first
    (:func:`sinsemi.generators.params.parse_params`: unknown keys, types, ranges)."""
    from sinsemi.generators.params import parse_params

    cls = generator_class(name)
    check_devices(name, (runtime or Runtime()).trainer_kwargs.get("devices", 1))
    params = {k: v for k, v in dict(params or {}).items() if k != "name"}
    parse_params(name, params)
    try:
        return cls(runtime=runtime or Runtime(), **params)
    except TypeError as e:
        raise InputError(f"bad config for generator '{name}': {e}") from None


# ----------------------------------------------------------------------------- save / load
def write_model(directory: str | Path, name: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> Path:
    """Save a generator: ``generator.json`` (name, params) and ``state.pt`` (tensors/primitives)."""
    from sinsemi.data.io import ensure_dir, save_checkpoint_file, save_json

    directory = ensure_dir(directory)
    save_checkpoint_file(dict(state), directory / "state.pt")  # atomic, and the same bytes for the same state
    save_json({"name": name, "format": MODEL_FORMAT, "params": dict(params)}, directory / "generator.json")
    return directory


def read_model(directory: str | Path, expected: str | None = None) -> tuple[str, dict, dict]:
    """Read a saved generator: (name, params, state). Checks it is a ``expected`` generator."""
    directory = Path(directory)
    meta_path = directory / "generator.json"
    if not meta_path.exists():
        raise InputError(f"no saved generator in {directory} (generator.json missing): train first or point to a run's model dir")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt {meta_path}: {e}") from None
    name = meta.get("name")
    if expected is not None and name != expected:
        raise InputError(f"{directory} holds a '{name}' generator, not a '{expected}' one")
    try:
        state = torch.load(directory / "state.pt", map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"no weights in {directory} (state.pt missing)") from None
    except Exception as e:
        raise pickle_refusal(directory / "state.pt", e) or InputError(
            f"cannot read {directory / 'state.pt'}: {type(e).__name__}: {e}") from None
    return name, dict(meta.get("params", {})), state


def load_generator(directory: str | Path, runtime: Runtime | None = None):
    """Load whichever generator is saved in ``directory`` (name read from ``generator.json``)."""
    name, _, _ = read_model(directory)
    return generator_class(name).load(directory, runtime=runtime)


# ----------------------------------------------------------------------------- standardisation
@dataclass
class Standardizer:
    """Per-channel standardisation of the training image, undone on samples.

    ``forward``: x -> (x - mean) / std;  ``inverse``: y -> y * std + mean. mean, std: (C,).
    """

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, image: torch.Tensor) -> "Standardizer":
        from sinsemi.data.io import check_trainable

        check_trainable(image)
        flat = image.detach().float().flatten(1)
        return cls(mean=flat.mean(1), std=flat.std(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._b(self.mean, x)) / self._b(self.std, x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._b(self.std, y) + self._b(self.mean, y)

    @staticmethod
    def _b(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, 1) if x.ndim == 3 else (1, -1, 1, 1)
        return v.to(x.device, x.dtype).view(shape)

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor]) -> "Standardizer":
        return cls(mean=state["mean"].float(), std=state["std"].float())


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """Validate the sampling request (one seed per sample, at least one) as a list of ints."""
    if isinstance(seeds, (int, str, bytes)) or not hasattr(seeds, "__len__"):
        raise InputError(f"seeds must be a sequence of integers (one per sample), got {seeds!r}")
    if len(seeds) == 0:
        raise InputError("number of samples must be positive, got no seeds")
    import numbers

    from sinsemi.checks import check_seed

    # 0 .. SEED_MAX (harden, issue 25); numpy/torch integers taken as ints
    return [check_seed("a sample seed", int(s) if isinstance(s, numbers.Integral) else s) for s in seeds]


def clamp_counted(x: torch.Tensor, lo: float, hi: float) -> tuple[torch.Tensor, int]:
    """``x`` clamped to [lo, hi] and how many of its values were outside (any shape)."""
    return x.clamp(lo, hi), int(((x < lo) | (x > hi)).sum())
