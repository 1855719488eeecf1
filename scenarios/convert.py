"""Located YAML nodes to schema values: each field converted against the schema's type hints, with
an error naming the key, its line, what was expected and what was found.

Scalars go through `coercion.coerce`, the one conversion of a plain value to a field's type that the
training settings (`marl.config`), SLURM site files (`hpc.slurm`) and policy configs (`memory.config`)
use too."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

from coercion import CoercionError, coerce, field_hints
from scenarios.errors import ScenarioError, shown
from scenarios.nodes import Context, Node, plain

FieldReader = Callable[[Node, Context], Any]
"""Converts one field's node in its own way (`convert_dataclass`'s `readers`)."""


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
    hints = field_hints(cls)
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
            values[name] = convert(child, hints[name], child_key, context)
    return cls(**values)
