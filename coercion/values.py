"""`coerce`: the one conversion of a plain value to a field's type hint, strict or lenient."""

from __future__ import annotations

import types
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_NONE_WORDS = ("none", "null")


class CoercionError(ValueError):
    """A value that is not of the type asked for; the caller says where and what was expected."""


def coerce(value: Any, hint: Any, lenient: bool = False) -> Any:
    """`value` as the type `hint`: bool, int, float, str, a Literal of strings, a `tuple[X, ...]` (from a
    list or tuple, item by item), or an Optional / union of these (the first alternative that fits).
    Strict by default, for values a YAML parser typed: a bool is no number, an int is a float. `lenient`
    also reads what a command line gives as text and what a loosely typed block holds: numbers in strings
    ("3e-4"), integral numbers as ints ("1e6", 2.0), the words true/yes/1 and false/no/0, none/null.
    Non-finite floats pass (callers check their ranges). Raises `CoercionError` when nothing fits.
    """
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        words = lenient and isinstance(value, str) and value.lower() in _NONE_WORDS
        if (value is None or words) and type(None) in get_args(hint):
            return None
        for inner in (arg for arg in get_args(hint) if arg is not type(None)):
            try:
                return coerce(value, inner, lenient)
            except CoercionError:
                continue
    elif origin is Literal:
        if isinstance(value, str) and value in get_args(hint):
            return value
    elif origin is tuple and get_args(hint)[-1:] == (Ellipsis,):
        if isinstance(value, list | tuple):
            return tuple(coerce(item, get_args(hint)[0], lenient) for item in value)
    elif hint is bool:
        if isinstance(value, bool):
            return value
        if lenient and isinstance(value, str) and value.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.lower()]
    elif hint in (int, float):
        number = _number(value, lenient)
        if hint is float and number is not None:
            return float(number)
        if isinstance(number, int) or (lenient and isinstance(number, float) and number.is_integer()):
            return int(number)
    elif hint is str and isinstance(value, str):
        return value
    raise CoercionError(f"{value!r} is not {hint}")


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` is of the type `hint` as `coerce` reads it strictly."""
    try:
        coerce(value, hint)
    except CoercionError:
        return False
    return True


def _number(value: Any, lenient: bool) -> int | float | None:
    """An int or float of a number (or, `lenient`, of a numeric string); None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if lenient and isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                continue
    return None


@cache
def field_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass's fields (cached)."""
    return get_type_hints(cls)
