"""The checks of one value, one wording: a number in a range, a seed, a flag, a choice.

Each raises :class:`sinsemi.errors.InputError` with one sentence naming the setting, the value and
what is allowed. Shared by :mod:`sinsemi.validation` (job configs) and
:mod:`sinsemi.generators.params` (generator and sampler parameters); imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sinsemi.errors import InputError


# ----------------------------------------------------------------------------- numbers
#: the largest seed: numpy's and Lightning's ``seed_everything`` range (uint32); every seed a job
#: uses (``seed``, and ``seed_base + i`` for each sample i) lies in 0 .. SEED_MAX
SEED_MAX = 2**32 - 1
#: the most samples one job draws: draw more in chunks with consecutive ``seed_base`` (sample i of
#: ``seed_base=b`` is sample b + i of ``seed_base=0``, so chunks join into one set)
MAX_SAMPLES = 10**6


def _fmt(x: float) -> str:
    """A bound as written: whole numbers in full (4294967295, not 4.29497e+09)."""
    return str(int(x)) if math.isfinite(x) and float(x).is_integer() else f"{x:g}"


def check_number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = True, integer: bool = False,
                 allow_none: bool = False, maximum: float | None = None, strict_maximum: bool = False):
    """``value`` is a number (not a bool, not a string) ``> minimum`` (``>=`` unless ``strict``) and
    ``<= maximum`` (``<`` with ``strict_maximum``); with ``integer`` it must be whole. Never inf or
    NaN. Returns it (an ``int`` when ``integer``)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)  # inf and NaN (YAML's .inf/.nan; int('inf') would crash later)
    ok = ok and (not integer or float(value).is_integer())
    ok = ok and (value > minimum if strict else value >= minimum)
    ok = ok and (maximum is None or (value < maximum if strict_maximum else value <= maximum))
    if not ok:
        kind = "an integer" if integer else "a finite number" if isinstance(value, float) and not math.isfinite(value) else "a number"
        rng = f"{'>' if strict else '>='} {_fmt(minimum)}" + (f" and {'<' if strict_maximum else '<='} {_fmt(maximum)}" if maximum is not None else "")
        raise InputError(f"{name} must be {kind} {rng}{' (or null)' if allow_none else ''}, got {value!r}")
    return int(value) if integer else value


def check_seed(name: str, value: Any) -> int:
    """A seed: an integer in 0 .. :data:`SEED_MAX`."""
    seed = check_number(name, value, minimum=0, strict=False, integer=True)  # a type error says so first
    return check_number(name, seed, minimum=0, strict=False, integer=True, maximum=SEED_MAX)


def check_count(name: str, value: Any, *, seed_base: Any = None, seed_name: str = "seed_base",
                maximum: int = MAX_SAMPLES) -> int:
    """A number of samples: an integer in 1 .. ``maximum``, checked before any list of that length is
    built; with ``seed_base`` the last per-sample seed ``seed_base + n - 1`` must stay <= SEED_MAX."""
    n = check_number(name, value, integer=True)
    if n > maximum:
        raise InputError(f"{name}={n} is over the limit of {maximum} samples per job: draw them in chunks of at "
                         f"most {maximum} with consecutive {seed_name} ({seed_name}=0 {name}={maximum}, then "
                         f"{seed_name}={maximum} {name}={maximum}, ...: sample i of {seed_name}=b is sample b+i of {seed_name}=0)")
    if seed_base is not None:
        base = check_seed(seed_name, seed_base)
        if base + n - 1 > SEED_MAX:
            raise InputError(f"{seed_name}={base} with {name}={n} needs seeds up to {base + n - 1}, over the largest "
                             f"seed {SEED_MAX}: use {seed_name} <= {SEED_MAX - n + 1}")
    return n


def check_bool(name: str, value: Any) -> bool:
    """A flag: true or false (not a string such as 'ture', which Python would take as true)."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if str(value) not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)
