"""Typed coercion shared by every layer: a plain value (YAML's, a command line's, a checkpoint's) as the
type a frozen dataclass's field declares.

The bottom layer of GridSwarm beside `fsio` and `optdeps`: it imports nothing of ours, and every package
may import it. Each caller words its own one-line error (file, line, key) around a `CoercionError`.

    coerce(value, int | None)              # strict: what a YAML parser typed, else CoercionError
    coerce("3e-4", float, lenient=True)    # also numbers, booleans and none in text (command lines)
    conforms(value, tuple[str, ...])       # whether `value` already is of the type (strict coerce)
    field_hints(SomeDataclass)             # the resolved type hint of every field (cached)
"""

from coercion.values import CoercionError, coerce, conforms, field_hints

__all__ = ["CoercionError", "coerce", "conforms", "field_hints"]
