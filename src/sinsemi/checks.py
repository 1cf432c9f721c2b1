"""The checks of one value, one wording: a number in a range, a seed, a flag, a choice.

Each raises :class:`sinsemi.errors.InputError` with one sentence naming the setting, the value and
what is allowed. Shared by :mod:`sinsemi.validation` (job configs) and
:mod:`sinsemi.generators.params` (generator and sampler parameters); imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sinsemi.errors import InputError


# ----------------------------------------------------------------------------- numbers
def check_number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = True, integer: bool = False,
                 allow_none: bool = False, maximum: float | None = None, strict_maximum: bool = False):
    """``value`` is a number (not a bool, not a string) ``> minimum`` (``>=`` unless ``strict``) and
    ``<= maximum`` (``<`` with ``strict_maximum``); with ``integer`` it must be whole. Returns it (an
    ``int`` when ``integer``)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and value == value  # NaN
    ok = ok and (not integer or float(value).is_integer())
    ok = ok and (value > minimum if strict else value >= minimum)
    ok = ok and (maximum is None or (value < maximum if strict_maximum else value <= maximum))
    if not ok:
        kind = "an integer" if integer else "a number"
        rng = f"{'>' if strict else '>='} {minimum:g}" + (f" and {'<' if strict_maximum else '<='} {maximum:g}" if maximum is not None else "")
        raise InputError(f"{name} must be {kind} {rng}{' (or null)' if allow_none else ''}, got {value!r}")
    return int(value) if integer else value


def check_seed(name: str, value: Any) -> int:
    """A seed: a non-negative integer."""
    return check_number(name, value, minimum=0, strict=False, integer=True)


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
