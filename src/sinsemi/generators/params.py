"""Each generator's parameters (``cfg.generator``) and sampler settings (``cfg.sampler``) as one frozen
dataclass, and the one check of them: :func:`parse_params` / :func:`parse_sampler`.

SinSEMI's two dataclasses spell out every setting once, with its default and allowed range (the
field's metadata); its LightningModule hparams (:func:`module_hparams`), its checkpoint check
(:data:`IDENTITY`), ``generator.json`` and the run fingerprint (:func:`model_keys`) derive from
them. A baseline's dataclass is made from its constructor's (or ``sample``'s) keyword arguments
(:func:`signature_dataclass`), so the constructor stays the one place that names its settings;
its value ranges are the constructor's own checks. The jobs validate once, at their start
(:mod:`sinsemi.validation`); the maths below the generators only asserts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from functools import cache
from typing import Any

from sinsemi.checks import check_bool, check_choice, check_number
from sinsemi.errors import InputError
from sinsemi.flow.sampler import COARSE, KINDS  # the sampler kinds / scale-0 rules (the maths asserts them)

#: depthwise kernel sizes of SinSEMI's net blocks (receptive field 4 (k + 3) + 1: 25 / 33 / 41 / 49 px); paper: 5
KERNELS = ("3", "5", "7", "9")
LPIPS_NETS = ("alex", "vgg", "squeeze")
PAPER_MILESTONES = (20_000, 40_000, 70_000, 80_000, 90_000, 110_000)


# ----------------------------------------------------------------------------- field specs
def _num(default, *, integer: bool = False, minimum: float = 0.0, strict: bool = True, maximum: float | None = None,
         strict_maximum: bool = False, allow_none: bool = False, **meta) -> Any:
    """A number field: ``check_number``'s range, finite, cast to int / float."""
    return field(default=default, metadata=dict(kind="number", integer=integer, minimum=minimum, strict=strict,
                                                maximum=maximum, strict_maximum=strict_maximum, allow_none=allow_none, **meta))


def _flag(default: bool, **meta) -> Any:
    return field(default=default, metadata=dict(kind="bool", **meta))


def _choice(default, choices: tuple[str, ...], cast=str, **meta) -> Any:
    return field(default=default, metadata=dict(kind="choice", choices=choices, cast=cast, **meta))


def _numbers(default: tuple, *, integer: bool = False, **meta) -> Any:
    """A list of numbers >= 0 (each checked), kept as a list (as the checkpoints and generator.json hold it)."""
    return field(default_factory=lambda: list(default), metadata=dict(kind="numbers", integer=integer, **meta))


def _check_value(m: Mapping[str, Any], value: Any, name: str) -> Any:
    """One value checked against its field's metadata ``m`` and cast; raises InputError naming ``name``."""
    kind = m.get("kind")
    if kind == "number":
        v = check_number(name, value, integer=m["integer"], minimum=m["minimum"], strict=m["strict"],
                         maximum=m["maximum"], strict_maximum=m["strict_maximum"], allow_none=m["allow_none"])
        if v is not None and not math.isfinite(v):
            raise InputError(f"{name} must be a finite number, got {value!r}")
        return v if v is None or m["integer"] else float(v)
    if kind == "bool":
        return check_bool(name, value)
    if kind == "choice":
        return m["cast"](check_choice(name, value, m["choices"]))
    if kind == "numbers":
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise InputError(f"{name} must be a list of numbers, got {value!r}")
        item = _num(0, integer=m["integer"], strict=False).metadata  # each entry: a number >= 0
        return [_check_value(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    return value


# ----------------------------------------------------------------------------- SinSEMI
@dataclass(frozen=True)
class SinSEMIParams:
    """SinSEMI's hyper-parameters (``cfg.generator`` without ``name``), in ``generator.json``'s order.

    ``module``: recorded in the LightningModule's hparams (:func:`module_hparams`); ``model=False``:
    changes memory or speed only, never the fitted weights (left out of the run fingerprint). See
    ``conf/generator/sinsemi.yaml`` for what each one means.
    """

    width: int = _num(160, integer=True, module=True)  # even (checked in parse_params)
    iterations: int = _num(120_000, integer=True)
    batch_size: int = _num(32, integer=True, module=True)
    lr: float = _num(1e-4, module=True)
    milestones: list[int] = _numbers(PAPER_MILESTONES, integer=True, module=True)
    lr_gamma: float = _num(0.5, module=True)
    sigma: float = _num(0.35, module=True)
    t_eps: float = _num(0.01, maximum=0.5, strict_maximum=True, module=True)
    ema_decay: float = _num(0.995, strict=False, maximum=1.0, strict_maximum=True, module=True)
    grad_clip: float = _num(1.0)
    scale_factor: float = _num(1.4, minimum=1.0)
    min_coarse: int = _num(42, integer=True)
    max_coarse: int = _num(55, integer=True)
    coarse_area: float = _num(3000.0)
    channels_last: bool = _flag(False, module=True)
    sample_batch: int = _num(16, integer=True, model=False)
    crop: int = _num(0, integer=True, strict=False, module=True)  # 0 or >= 16 (checked in parse_params)
    t_sampling: str = _choice("uniform", ("uniform", "ends"), module=True)
    padding_mode: str = _choice("zeros", ("zeros", "reflect", "replicate"), module=True)
    scale_weights: list[float] = _numbers((), module=True)  # [] or a positive sum (checked in parse_params)
    fast_kernels: bool = _flag(False, model=False, module=True)
    compile: bool = _flag(False, model=False, module=True)
    kernel: int = _choice(5, KERNELS, cast=int, module=True)


@dataclass(frozen=True)
class SinSEMISampler:
    """SinSEMI's sampler settings (``cfg.sampler``; :meth:`SinSEMI.sample`'s keywords).

    steps: per scale (paper 300); coarse_steps: at scale 0 (None = steps); kind: bridge | ode | em |
    sde (:mod:`sinsemi.flow.sampler`); coarse: the bridge kind's rule at scale 0; guidance: LPIPS
    energy weight w >= 0 (0 = off); noise: em/sde noise scale (None = the training sigma); lpips_net:
    the guidance backbone; batch_size: samples per forward (None = ``sample_batch``; memory only);
    allow_random_backbone: LPIPS without pretrained weights (tests); keep_intermediates: also return
    every scale's result.
    """

    steps: int = _num(300, integer=True)
    kind: str = _choice("bridge", KINDS)
    coarse: str = _choice("posterior", COARSE)
    coarse_steps: int | None = _num(None, integer=True, allow_none=True)
    guidance: float = _num(0.0, strict=False)
    noise: float | None = _num(None, strict=False, allow_none=True)
    lpips_net: str = _choice("alex", LPIPS_NETS)
    batch_size: int | None = _num(None, integer=True, allow_none=True)
    allow_random_backbone: bool = _flag(False)
    keep_intermediates: bool = _flag(False)


#: the hparams a SinSEMI checkpoint must share with the run resuming it (one model, one image)
IDENTITY = ("channels", "width", "n_scales", "padding_mode", "kernel", "image_sha256")
#: the order Lightning has recorded SinSEMIModule's hparams in since the first checkpoints
#: (its old signature order): the ``module`` fields of SinSEMIParams and the facts of one fit
_MODULE_ORDER = ("channels", "width", "n_scales", "batch_size", "lr", "milestones", "lr_gamma", "sigma", "t_eps",
                 "ema_decay", "seed", "channels_last", "crop", "t_sampling", "padding_mode", "scale_weights",
                 "image_sha256", "fast_kernels", "compile", "precision", "kernel")
#: the facts of one fit (not parameters) in the module's hparams, and their defaults
_FIT_FACTS = {"image_sha256": "", "precision": ""}


def module_hparams(params: SinSEMIParams | None = None, *, channels: int, n_scales: int, seed: int,
                   **more: Any) -> dict[str, Any]:
    """SinSEMIModule's hparams: the ``module`` fields of ``params`` (default: SinSEMIParams()) and the
    fit's facts (channels, n_scales, seed, image_sha256, precision), primitives only (a checkpoint loads
    with ``weights_only=True``), in :data:`_MODULE_ORDER`. ``more``: the other facts, and module fields
    that replace ``params``' (a module built by hand, as in the tests)."""
    params = params if params is not None else SinSEMIParams()
    values = {f.name: getattr(params, f.name) for f in fields(params) if f.metadata.get("module")}
    values.update(_FIT_FACTS, channels=int(channels), n_scales=int(n_scales), seed=int(seed))
    unknown = sorted(set(more) - set(values))
    assert not unknown, f"not SinSEMIModule hparams: {unknown}"
    values.update(more)
    assert set(values) == set(_MODULE_ORDER), sorted(set(values) ^ set(_MODULE_ORDER))
    return {k: values[k] for k in _MODULE_ORDER}


def _check_sinsemi(p: SinSEMIParams, prefix: str) -> None:
    """SinSEMI's rules that span more than one value of a field."""
    if p.width % 2:
        raise InputError(f"{prefix}width must be even, got {p.width}")
    if 0 < p.crop < 16:
        raise InputError(f"{prefix}crop must be 0 (full levels) or >= 16 px, got {p.crop}")
    if p.scale_weights and sum(p.scale_weights) <= 0:
        raise InputError(f"{prefix}scale_weights must have a positive sum, got {p.scale_weights}")


# ----------------------------------------------------------------------------- the baselines
#: ranges of settings that mean the same in every generator that has them (checked by parse_params)
_SHARED = {"ema_decay": SinSEMIParams.__dataclass_fields__["ema_decay"].metadata}


@cache
def signature_dataclass(cls: type, method: str = "__init__") -> type:
    """A frozen dataclass of the keyword arguments (and defaults) of ``cls.<method>`` (for ``sample``:
    also of ``_sample_batch`` when ``sample`` forwards ``**settings`` to it)."""
    specs: dict[str, Any] = {}
    for meth in ((method, "_sample_batch") if method == "sample" else (method,)):
        fn = getattr(cls, meth, None)
        if fn is None:
            continue
        params = inspect.signature(fn).parameters
        specs.update({k: p.default for k, p in params.items()
                      if p.kind == p.KEYWORD_ONLY and k != "runtime" and p.default is not inspect.Parameter.empty})
        if meth == "sample" and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    kind = "Sampler" if method == "sample" else "Params"
    def spec(k: str, v: Any) -> Any:
        meta = _SHARED.get(k, {})
        if isinstance(v, (list, dict, set)):
            return field(default_factory=lambda: type(v)(v), metadata=meta)
        return field(default=v, metadata=meta)

    return make_dataclass(f"{cls.__name__}{kind}", [(k, Any, spec(k, v)) for k, v in specs.items()], frozen=True)


def params_class(generator: str) -> type:
    """The parameter dataclass of generator ``generator``."""
    from sinsemi.generators.registry import generator_class

    cls = generator_class(generator)
    return getattr(cls, "Params", None) or signature_dataclass(cls, "__init__")


def sampler_class(generator: str) -> type:
    """The sampler-settings dataclass of generator ``generator``."""
    from sinsemi.generators.registry import generator_class

    cls = generator_class(generator)
    return getattr(cls, "Sampler", None) or signature_dataclass(cls, "sample")


# ----------------------------------------------------------------------------- parse
#: sampler keys a job adds itself (not the user's): accepted for every generator, passed only to one that takes them
INTERNAL_SAMPLER_KEYS = ("allow_random_backbone",)


def _parse(dc: type, mapping: Mapping[str, Any], group: str, generator: str, extra: tuple[str, ...] = ()):
    known = {f.name: f for f in fields(dc)}
    prefix = f"{group}."
    unknown = sorted(k for k in mapping if k not in known and k not in extra)
    if unknown:
        raise InputError(f"unknown {group} setting(s) {', '.join(prefix + k for k in unknown)} for generator "
                         f"{generator} (it takes: {', '.join(sorted(known)) or 'none'})")
    values = {k: _check_value(known[k].metadata, v, prefix + k) for k, v in mapping.items() if k in known}
    return dc(**values)


def parse_params(generator: str, mapping: Mapping[str, Any]) -> Any:
    """``cfg.generator`` (without ``name``) as the generator's parameter dataclass: unknown keys,
    types, ranges and finite numbers checked (InputError naming ``generator.<key>`` and its range)."""
    mapping = {k: v for k, v in dict(mapping or {}).items() if k != "name"}
    p = _parse(params_class(generator), mapping, "generator", generator)
    if isinstance(p, SinSEMIParams):
        _check_sinsemi(p, "generator.")
    return p


def parse_sampler(generator: str, mapping: Mapping[str, Any]):
    """``cfg.sampler`` as the generator's sampler dataclass (InputError naming ``sampler.<key>``).
    A baseline's ``steps`` (when set) is a positive integer (null where its default is null: the
    generator's own schedule), its ``guidance`` >= 0; its other ranges are its own ``sample``'s."""
    dc = sampler_class(generator)
    s = _parse(dc, mapping, "sampler", generator, extra=INTERNAL_SAMPLER_KEYS)
    if dc is not SinSEMISampler:
        defaults = {f.name: f.default for f in fields(dc)}
        if "steps" in mapping:
            check_number("sampler.steps", mapping["steps"], integer=True, allow_none=defaults.get("steps") is None)
        if "guidance" in mapping:
            check_number("sampler.guidance", mapping["guidance"], strict=False)
        for key, value in mapping.items():  # each value of its default's type (a string for a number: an error)
            _check_type(f"sampler.{key}", value, defaults.get(key))
    return s


def _check_type(name: str, value: Any, default: Any) -> None:
    """``value`` has the type of the setting's ``default`` (a flag, a number, a string); a number is
    never inf or NaN. A setting without a default (None, or none declared) takes any finite value."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if value is None or default is None or default is MISSING or default is inspect.Parameter.empty:
        return
    if isinstance(default, bool):
        check_bool(name, value)
    elif isinstance(default, (int, float)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(f"{name} must be a number (its default is {default!r}), got {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        raise InputError(f"{name} must be a string (its default is {default!r}), got {value!r}")


def defaults(dc: type) -> dict[str, Any]:
    """A parameter dataclass's fields and their defaults."""
    return {f.name: (f.default if f.default is not MISSING else f.default_factory()) for f in fields(dc)}


def model_keys(generator: str, keys) -> list[str]:
    """Of ``keys`` (a config's generator params), those the fitted model depends on, sorted: all but
    the fields marked ``model=False`` (memory / speed only). Unknown keys are kept (they differ
    between runs as much as any)."""
    skip = {f.name for f in fields(params_class(generator)) if f.metadata.get("model") is False}
    return sorted(k for k in keys if k not in skip)
