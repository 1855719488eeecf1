"""Located YAML nodes to schema values: each field converted against the schema's type hints, with
an error naming the key, its line, what was expected and what was found.

`coerce` is the one conversion of a plain value to a field's type: the scenario fields here, and the
training settings of `marl.config` (a train block's values and `--set key=value` strings, `lenient`).
Each caller words its own one-line error around a `CoercionError`."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from scenarios.errors import ScenarioError, shown
from scenarios.nodes import Context, Node, plain

FieldReader = Callable[[Node, Context], Any]
"""Converts one field's node in its own way (`convert_dataclass`'s `readers`)."""

_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_NONE_WORDS = ("none", "null")


class CoercionError(ValueError):
    """A value that is not of the type asked for; the caller says where and what was expected."""


def coerce(value: Any, hint: Any, lenient: bool = False) -> Any:
    """`value` as the type `hint`: bool, int, float, str, a Literal of strings, or an Optional / union of
    these (the first alternative that fits). Strict by default, for values a YAML parser typed: a bool is
    no number, an int is a float. `lenient` also reads what a command line gives as text and what a
    loosely typed block holds: numbers in strings ("3e-4"), integral numbers as ints ("1e6", 2.0), the
    words true/yes/1 and false/no/0, none/null. Non-finite floats pass (callers check their ranges).
    Raises `CoercionError` when nothing fits.
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
def hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a schema dataclass (cached)."""
    return get_type_hints(cls)


def _expected(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arg) if arg is not type(None) else "null" for arg in get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in get_args(hint))
    if origin is tuple:
        args = get_args(hint)
        if args[-1] is Ellipsis:
            return f"a list of ({_expected(args[0])})"
        return f"a list of {len(args)} integers"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def mismatch(node: Node, hint: Any, key: str, context: Context) -> ScenarioError:
    """The error for a value that is not of the type `hint`."""
    return context.error(key, f"expected {_expected(hint)}, found {shown(plain(node))}", node.line)


def convert(node: Node, hint: Any, key: str, context: Context) -> Any:
    """The value of type `hint` that `node` holds (unions: the first alternative that fits), recording
    the line of `key`; `ScenarioError` when none fits."""
    context.lines.setdefault(key, node.line)
    origin = get_origin(hint)
    value = node.value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        *earlier, last = (arg for arg in get_args(hint) if arg is not type(None))
        for inner in earlier:  # the first alternative that fits wins
            try:
                return convert(node, inner, key, context)
            except ScenarioError:
                continue
        if earlier:
            try:
                return convert(node, last, key, context)
            except ScenarioError:
                raise mismatch(node, hint, key, context) from None
        return convert(node, last, key, context)
    if origin is Literal:
        try:
            return coerce(value, hint)
        except CoercionError:
            choices = get_args(hint)
            close = difflib.get_close_matches(str(value), [str(choice) for choice in choices], n=1)
            hint_text = f" (did you mean '{close[0]}'?)" if close else ""
            raise context.error(
                key, f"expected {_expected(hint)}, found {shown(value)}{hint_text}", node.line
            ) from None
    if origin is tuple:
        return _convert_tuple(node, hint, key, context)
    if dataclasses.is_dataclass(hint):
        return convert_dataclass(node, hint, key, context)
    try:
        converted = coerce(value, hint)
    except CoercionError:
        raise mismatch(node, hint, key, context) from None
    if isinstance(converted, float) and not math.isfinite(converted):
        raise mismatch(node, hint, key, context)
    return converted


def _convert_tuple(node: Node, hint: Any, key: str, context: Context) -> tuple[Any, ...]:
    args = get_args(hint)
    if not isinstance(node.value, list):
        raise mismatch(node, hint, key, context)
    if args[-1] is not Ellipsis and len(node.value) != len(args):
        raise mismatch(node, hint, key, context)
    item_hints = [args[0]] * len(node.value) if args[-1] is Ellipsis else list(args)
    return tuple(
        convert(item, item_hint, f"{key}[{index}]", context)
        for index, (item, item_hint) in enumerate(zip(node.value, item_hints, strict=True))
    )


def unknown_key(name: str, allowed: list[str], key: str, node: Node, context: Context) -> ScenarioError:
    """The error for a key the block does not have, with the closest allowed key as a hint."""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
    hint = f"; did you mean '{_join(key, close[0])}'?" if close else ""
    return context.error(
        _join(key, name), f"unknown key, expected one of: {', '.join(allowed)}{hint}", node.value[name].line
    )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def convert_dataclass(
    node: Node, cls: type, key: str, context: Context, readers: Mapping[str, FieldReader] | None = None
) -> Any:
    """An instance of the dataclass `cls` from a mapping node; `readers` convert the named fields in
    their own way (the scenario's variants, train and eval blocks) instead of by type hint."""
    if not isinstance(node.value, dict):
        raise mismatch(node, cls, key, context)
    field_hints = hints(cls)
    allowed = [field.name for field in dataclasses.fields(cls) if field.name != "source"]
    values: dict[str, Any] = {}
    for name, child in node.value.items():
        if name not in allowed:
            raise unknown_key(name, allowed, key, node, context)
        child_key = _join(key, name)
        context.lines.setdefault(child_key, child.line)
        if readers is not None and name in readers:
            values[name] = readers[name](child, context)
        else:
            values[name] = convert(child, field_hints[name], child_key, context)
    return cls(**values)
