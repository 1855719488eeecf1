"""Load scenario YAML into a validated `Scenario`, with errors that point at the file, line and key.

The YAML is composed into nodes (which carry line marks) and converted field by field against the schema's
type hints. Every problem raises `ScenarioError` with a one-line message; nothing else escapes for any input.
Relative paths in `map.path` and `agents.scen` are resolved against the scenario file's folder.

Variants (curricula) are written as

    variants:
      key: map.corridor_length                      # a dotted key of a scalar field
      values: [3, 4, {from: 10, to: 20, step: 2}]    # items, or inclusive ranges spliced in
      linked:                                        # optional: other fields, one value per variant,
        dynamics.max_episode_steps: {scale: 2, offset: 100}   # as the rule scale * value + offset
        map.width: [9, 9, 9, 11, 11, 11, 13, 13]              # or as an explicit list

and stored explicitly (`Variants.linked` holds one value per variant for each linked key). Only the map
(`map.*`) and the episode limit (`dynamics.max_episode_steps`) may vary: one batched `GridEnv` plays every
variant, and its agents, observations, rewards and rules are the same in all of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from fsio import control_character, read_text_bounded
from scenarios.asciimap import parse_ascii_map
from scenarios.errors import ScenarioError, scenario_error, shown
from scenarios.limits import (
    MAX_CELLS,
    MAX_EPISODE_STEPS,
    MAX_FILE_BYTES,
    MAX_NEIGHBOUR_RADIUS,
    MAX_NEIGHBOURS,
    MAX_PATTERN_CHARACTERS,
    MAX_SIDE,
    MAX_VARIANTS,
    MAX_YAML_NODES,
)
from scenarios.schema import AgentsSpec, MapSpec, Scenario, Variants, _frozen

LIBRARY = Path(__file__).resolve().parent / "library"

# The map keys each generator reads; giving any other map key is an error, not silently ignored.
GENERATOR_KEYS: dict[str, tuple[str, ...]] = {
    "random": ("width", "height", "density"),
    "maze": ("width", "height", "loops"),
    "warehouse": ("shelf_rows", "shelf_columns", "shelf_length", "station_columns"),
    "bottleneck": ("corridor_length",),
    "ascii": ("ascii",),
    "movingai": ("path",),
    "benchmark": ("path", "name"),
}
BOTTLENECK_WIDTH = 9
BOTTLENECK_ROOM_ROWS = 2
NAME = re.compile(r"(?P<base>[A-Za-z0-9][A-Za-z0-9_.+-]{0,127})(\[[A-Za-z_.]+=[^\[\]]{1,512}\])?")
"""A scenario's name, and a variant's (`base[key=value]`, as `expand_variants` names them): the base has no
path separators or dot-dot, since it names run directories (`runs/<name>-...`)."""

# Range checks on converted values: dotted key -> (accepts, what was expected).
LIMITS: dict[str, tuple[Any, str]] = {
    "map.width": (lambda v: 2 <= v <= MAX_SIDE, f"an integer in [2, {MAX_SIDE}]"),
    "map.height": (lambda v: 2 <= v <= MAX_SIDE, f"an integer in [2, {MAX_SIDE}]"),
    "map.density": (lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "map.loops": (lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "map.corridor_length": (lambda v: 1 <= v <= MAX_SIDE, f"an integer in [1, {MAX_SIDE}]"),
    "map.shelf_rows": (lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
    "map.shelf_columns": (lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
    "map.shelf_length": (lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
    "map.station_columns": (lambda v: 0 <= v <= 64, "an integer in [0, 64]"),
    "agents.count": (lambda v: v >= 1, "an integer >= 1"),
    "dynamics.max_episode_steps": (
        lambda v: 1 <= v <= MAX_EPISODE_STEPS,
        f"an integer in [1, {MAX_EPISODE_STEPS}]",
    ),
    "observation.radius": (lambda v: 1 <= v <= 128, "an integer in [1, 128]"),
    "observation.channels": (lambda v: 0 < len(v) == len(set(v)), "a non-empty list without repeats"),
    "observation.neighbours": (lambda v: 0 <= v <= MAX_NEIGHBOURS, f"an integer in [0, {MAX_NEIGHBOURS}]"),
    "observation.neighbour_radius": (
        lambda v: 0 < v <= MAX_NEIGHBOUR_RADIUS,
        f"a number in (0, {MAX_NEIGHBOUR_RADIUS:g}]",
    ),
    "reward.step_cost": (lambda v: v >= 0, "a number >= 0"),
    "seed": (lambda v: v is None or 0 <= v < 2**63, "null or an integer in [0, 2**63)"),
}
PATH_KEYS = ("map.path", "agents.scen")
VARIANT_BLOCKED = ("name", "description", "variants", "train", "eval", "seed")
VARIANT_KEYS = ("map.", "dynamics.max_episode_steps")
"""What variants may change (prefixes): a batch of environments builds its agents, observations, rewards
and rules once (`sim.env` refuses variants that change them)."""


@dataclass(frozen=True)
class _Node:
    """A YAML value with the line that names it: dict[str, _Node] | list[_Node] | a scalar."""

    value: Any
    line: int


@dataclass
class _Context:
    source: str
    base: Path
    lines: dict[str, int]

    def error(self, key: str, problem: str, line: int | None = None, near: str = "") -> ScenarioError:
        """An error about `key` at `line`, else at the line of `key`, of its block, of `near`, or line 1."""
        line = line or self.line(key) or self.line(near) or 1
        return scenario_error(self.source, line, key, problem)

    def line(self, key: str) -> int | None:
        while key and key not in self.lines:
            key = key.rpartition(".")[0]
        return self.lines.get(key)


def builtin_names() -> list[str]:
    """The names of the built-in scenarios (`scenarios/library/*.yaml`)."""
    return sorted(path.stem for path in LIBRARY.glob("*.yaml"))


def load(source: str | os.PathLike[str] | Scenario) -> Scenario:
    """A validated `Scenario` from a YAML path, a built-in name, or a `Scenario` (returned as is)."""
    if isinstance(source, Scenario):
        return source
    path = Path(source)
    if not path.is_file() and str(source) in builtin_names():
        path = LIBRARY / f"{source}.yaml"
    if not path.is_file():
        names = builtin_names()
        close = difflib.get_close_matches(str(source), names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ScenarioError(
            f"{source}: no such file or built-in scenario (built-ins: {', '.join(names)}){hint}"
        )
    try:
        text = read_text_bounded(path, MAX_FILE_BYTES)
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read the file: {error.strerror}") from None
    return loads(text, source=str(path), base=path.resolve().parent)


def loads(text: str, source: str = "<string>", base: Path | None = None) -> Scenario:
    """A validated `Scenario` from YAML text; `base` resolves relative paths (default: the working folder)."""
    context = _Context(source=source, base=base or Path.cwd(), lines={})
    root = _parse(text, context)
    if not isinstance(root.value, dict):
        # the kind only, not the text: a path named by mistake (/proc/self/environ) must not be echoed
        kind = "a list" if isinstance(root.value, list) else "a single value"
        raise context.error("", f"expected a mapping of scenario keys, found {kind}", root.line)
    scenario = _convert_dataclass(root, Scenario, "", context)
    named = NAME.fullmatch(scenario.name)
    if "name" in root.value and (not named or ".." in named["base"] or control_character(scenario.name)):
        expected = "1-128 letters, digits and _.+- starting with a letter or digit, without '..'"
        raise context.error("name", f"expected {expected}, found {shown(scenario.name)}")
    if "name" not in root.value and source != "<string>":
        stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(source).stem).lstrip("._-")[:128]
        scenario = dataclasses.replace(scenario, name=stem.replace("..", "_") or "unnamed")
    scenario = _resolve_paths(dataclasses.replace(scenario, source=source), context.base)
    variant_context = _variant_context(context, scenario.variants)
    for variant in expand_variants(scenario):
        _check(variant, root, variant_context)
    return scenario


def _resolve_paths(scenario: Scenario, base: Path) -> Scenario:
    """Make `map.path` and `agents.scen` (and variant values of them) relative to the scenario's folder."""

    def resolved(path: Any) -> Any:
        return path if path is None or os.path.isabs(path) else os.path.normpath(base / path)

    for key in PATH_KEYS:
        scenario = _replace_dotted(scenario, key, resolved(_dotted(scenario, key)))
    variants = scenario.variants
    if variants is not None and variants.key in PATH_KEYS:
        values = tuple(resolved(value) for value in variants.values)
        scenario = dataclasses.replace(scenario, variants=dataclasses.replace(variants, values=values))
    return scenario


def _variant_context(context: _Context, variants: Variants | None) -> _Context:
    """A context that reports a problem with a varied field at the line of its variant values."""
    if variants is None:
        return context
    lines = dict(context.lines)
    lines[variants.key] = context.lines["variants.values"]
    for key in variants.linked:
        lines[key] = context.lines[f"variants.linked.{key}"]
    return dataclasses.replace(context, lines=lines)


def expand_variants(scenario: Scenario) -> list[Scenario]:
    """The concrete scenarios of a curriculum, one per variant value (or `[scenario]` without variants)."""
    variants = scenario.variants
    if variants is None:
        return [scenario]
    expanded = []
    for index, value in enumerate(variants.values):
        concrete = _replace_dotted(dataclasses.replace(scenario, variants=None), variants.key, value)
        for key, values in variants.linked.items():
            concrete = _replace_dotted(concrete, key, values[index])
        expanded.append(dataclasses.replace(concrete, name=f"{scenario.name}[{variants.key}={value}]"))
    return expanded


def to_dict(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain YAML values, defaults and the map keys its generator ignores left out.

    `loads(dump(s))` gives `s` back, apart from `source` (and map keys the generator does not read).
    """
    return _plain_value(scenario)


def dump(scenario: Scenario) -> str:
    """The scenario as YAML text."""
    return yaml.safe_dump(to_dict(scenario), sort_keys=False)


def _plain_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        used = GENERATOR_KEYS[value.generator] if isinstance(value, MapSpec) else None
        plain = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            default = field.default_factory() if callable(field.default_factory) else field.default
            is_map_key = used is not None and field.name != "generator"
            if field.name == "source" or (is_map_key and field.name not in used) or item == default:
                continue
            plain[field.name] = _plain_value(item)
        return plain
    if isinstance(value, Mapping):
        return {key: _plain_value(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain_value(item) for item in value]
    return value


# ---- YAML text -> located nodes -------------------------------------------------------------------------


def _parse(text: str, context: _Context) -> _Node:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:  # a character YAML does not allow
        line = text.count("\n", 0, error.position) + 1
        problem = f"invalid YAML: character {error.character:#x} is not allowed"
        raise context.error("", problem, line) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise context.error("", "expected a mapping of scenario keys, found an empty document", 1)
        _require_bounded_expansion(node, context)
        return _locate(node, loader, context, node.start_mark.line + 1, frozenset())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise context.error("", f"invalid YAML: {error.problem or error.context}", line) from None
    except yaml.YAMLError as error:
        raise context.error("", f"invalid YAML: {error}", None) from None
    except RecursionError:
        raise context.error("", "expected plain data, found nesting too deep to read", None) from None
    finally:
        loader.dispose()


def _require_bounded_expansion(root: yaml.Node, context: _Context) -> None:
    """Refuse YAML whose aliases expand to more than MAX_YAML_NODES values ("billion laughs"), counted over
    the composed graph in time linear in its distinct nodes, before anything expands it."""
    sizes: dict[int, int] = {}
    pending: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in pending:
            raise context.error("", "expected plain data, found a recursive alias", node.start_mark.line + 1)
        pending.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise context.error(
                    "",
                    f"expected at most {MAX_YAML_NODES} values, found more once YAML aliases are expanded",
                    node.start_mark.line + 1,
                )
        pending.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _locate(node: yaml.Node, loader: yaml.SafeLoader, context: _Context, line: int, path: frozenset) -> _Node:
    if id(node) in path:
        raise context.error("", "expected plain data, found a recursive alias", line)
    path = path | {id(node)}
    plain_tag = _PLAIN_TAGS.get(type(node))
    if plain_tag is not None and node.tag != plain_tag:
        kind = "mapping" if isinstance(node, yaml.MappingNode) else "list"
        raise context.error("", f"expected plain data, found the YAML tag {node.tag!r} on a {kind}", line)
    if isinstance(node, yaml.MappingNode):
        children: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise context.error(
                    "", "expected text keys, found a key of another kind (or a merge key)", key_line
                )
            if key_node.value in children:
                raise context.error("", f"expected each key once, found '{key_node.value}' twice", key_line)
            children[key_node.value] = _locate(value_node, loader, context, key_line, path)
        return _Node(children, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node(
            [_locate(item, loader, context, item.start_mark.line + 1, path) for item in node.value], line
        )
    return _Node(loader.construct_object(node), line)


def _plain(node: _Node) -> Any:
    if isinstance(node.value, dict):
        return {key: _plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(child) for child in node.value]
    return node.value


# ---- located nodes -> schema values --------------------------------------------------------------------


@cache
def _hints(cls: type) -> dict[str, Any]:
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


def _mismatch(node: _Node, hint: Any, key: str, context: _Context) -> ScenarioError:
    return context.error(key, f"expected {_expected(hint)}, found {shown(_plain(node))}", node.line)


def _convert(node: _Node, hint: Any, key: str, context: _Context) -> Any:
    context.lines.setdefault(key, node.line)
    origin = get_origin(hint)
    value = node.value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        *earlier, last = (arg for arg in get_args(hint) if arg is not type(None))
        for inner in earlier:  # the first alternative that fits wins
            try:
                return _convert(node, inner, key, context)
            except ScenarioError:
                continue
        if earlier:
            try:
                return _convert(node, last, key, context)
            except ScenarioError:
                raise _mismatch(node, hint, key, context) from None
        return _convert(node, last, key, context)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices or not isinstance(value, str):
            close = difflib.get_close_matches(str(value), [str(choice) for choice in choices], n=1)
            hint_text = f" (did you mean '{close[0]}'?)" if close else ""
            raise context.error(
                key, f"expected {_expected(hint)}, found {shown(value)}{hint_text}", node.line
            )
        return value
    if origin is tuple:
        return _convert_tuple(node, hint, key, context)
    if dataclasses.is_dataclass(hint):
        return _convert_dataclass(node, hint, key, context)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _mismatch(node, hint, key, context)
        return float(value)
    if hint in (int, str, bool) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise _mismatch(node, hint, key, context)


def _convert_tuple(node: _Node, hint: Any, key: str, context: _Context) -> tuple[Any, ...]:
    args = get_args(hint)
    if not isinstance(node.value, list):
        raise _mismatch(node, hint, key, context)
    if args[-1] is not Ellipsis and len(node.value) != len(args):
        raise _mismatch(node, hint, key, context)
    item_hints = [args[0]] * len(node.value) if args[-1] is Ellipsis else list(args)
    return tuple(
        _convert(item, item_hint, f"{key}[{index}]", context)
        for index, (item, item_hint) in enumerate(zip(node.value, item_hints, strict=True))
    )


def _unknown_key(name: str, allowed: list[str], key: str, node: _Node, context: _Context) -> ScenarioError:
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
    hint = f"; did you mean '{_join(key, close[0])}'?" if close else ""
    return context.error(
        _join(key, name), f"unknown key, expected one of: {', '.join(allowed)}{hint}", node.value[name].line
    )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _convert_dataclass(node: _Node, cls: type, key: str, context: _Context) -> Any:
    if not isinstance(node.value, dict):
        raise _mismatch(node, cls, key, context)
    hints = _hints(cls)
    allowed = [field.name for field in dataclasses.fields(cls) if field.name != "source"]
    values: dict[str, Any] = {}
    for name, child in node.value.items():
        if name not in allowed:
            raise _unknown_key(name, allowed, key, node, context)
        child_key = _join(key, name)
        if cls is Scenario and name == "variants":
            values[name] = None if child.value is None else _convert_variants(child, context)
        elif cls is Scenario and name in ("train", "eval"):
            if not isinstance(child.value, dict):
                raise context.error(
                    child_key, f"expected a mapping, found {shown(_plain(child))}", child.line
                )
            context.lines[child_key] = child.line
            values[name] = _frozen(_plain(child))
        else:
            values[name] = _convert(child, hints[name], child_key, context)
    return cls(**values)


def _convert_variants(node: _Node, context: _Context) -> Variants:
    context.lines["variants"] = node.line
    if not isinstance(node.value, dict):
        raise _mismatch(node, Variants, "variants", context)
    for name in node.value:
        if name not in ("key", "values", "linked"):
            raise _unknown_key(name, ["key", "values", "linked"], "variants", node, context)
    for required in ("key", "values"):
        if required not in node.value:
            raise context.error(f"variants.{required}", "expected this key, found it missing", node.line)
    key_node = node.value["key"]
    target_hint = _variant_hint(key_node, context, "variants.key")
    context.lines["variants.values"] = node.value["values"].line
    values = _variant_values(node.value["values"], target_hint, key_node.value, context)
    linked: dict[str, tuple[Any, ...]] = {}
    linked_node = node.value.get("linked", _Node({}, node.line))
    if not isinstance(linked_node.value, dict):
        raise context.error("variants.linked", f"expected a mapping, found {shown(_plain(linked_node))}")
    for linked_key, rule in linked_node.value.items():
        hint = _variant_hint(_Node(linked_key, rule.line), context, f"variants.linked.{linked_key}")
        if linked_key == key_node.value:
            raise context.error("variants.linked", f"expected keys other than '{linked_key}'", rule.line)
        linked[linked_key] = _linked_values(rule, hint, linked_key, values, context)
    return Variants(key=key_node.value, values=values, linked=_frozen(linked))


def _variant_hint(key_node: _Node, context: _Context, where: str) -> Any:
    dotted = key_node.value
    cls: Any = Scenario
    parts = dotted.split(".") if isinstance(dotted, str) else []
    for part in parts:
        names = [field.name for field in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        if part not in names or part in VARIANT_BLOCKED:
            raise context.error(
                where,
                f"expected a dotted key of a scenario field, found {shown(dotted)}",
                key_node.line,
            )
        cls = _hints(cls)[part]
    if dataclasses.is_dataclass(cls) or not parts:
        raise context.error(where, f"expected a key of a single value, found {shown(dotted)}", key_node.line)
    if not dotted.startswith(VARIANT_KEYS):
        raise context.error(
            where,
            f"expected a key that may differ between the environments of one batch (map.* or "
            f"dynamics.max_episode_steps), found {shown(dotted)}",
            key_node.line,
        )
    return cls


def _variant_values(node: _Node, hint: Any, key: str, context: _Context) -> tuple[Any, ...]:
    if not isinstance(node.value, list) or not node.value:
        raise context.error(
            "variants.values", f"expected a non-empty list, found {shown(_plain(node))}", node.line
        )
    values: list[Any] = []
    for item in node.value:
        if isinstance(item.value, dict):
            values.extend(_range(item, context, MAX_VARIANTS - len(values)))
        else:
            values.append(item)
        if len(values) > MAX_VARIANTS:
            raise context.error("variants.values", f"expected at most {MAX_VARIANTS} variants", item.line)
    return tuple(
        _convert(
            item if isinstance(item, _Node) else _Node(item, node.line),
            hint,
            f"variants.values ({key})",
            context,
        )
        for item in values
    )


def _range(node: _Node, context: _Context, room: int) -> range:
    parts = node.value
    if set(parts) - {"from", "to", "step"} or not {"from", "to"} <= set(parts):
        raise context.error(
            "variants.values", "expected a range {from: A, to: B, step: C} (step optional)", node.line
        )
    bounds = [parts.get(name, _Node(1, node.line)).value for name in ("from", "to", "step")]
    if not all(isinstance(bound, int) and not isinstance(bound, bool) for bound in bounds) or bounds[2] < 1:
        raise context.error(
            "variants.values", f"expected integer range bounds and step >= 1, found {bounds}", node.line
        )
    start, stop, step = bounds
    count = (stop - start) // step + 1
    if count < 1:
        raise context.error(
            "variants.values", f"expected a range of at least 1 value, found {bounds}", node.line
        )
    if count > room:
        raise context.error(
            "variants.values",
            f"expected at most {MAX_VARIANTS} variants in all, found a range of {count} values",
            node.line,
        )
    return range(start, stop + 1, step)


def _linked_values(
    rule: _Node, hint: Any, key: str, values: tuple[Any, ...], context: _Context
) -> tuple[Any, ...]:
    where = f"variants.linked.{key}"
    context.lines[where] = rule.line
    if isinstance(rule.value, list):
        if len(rule.value) != len(values):
            raise context.error(
                where, f"expected {len(values)} values (one per variant), found {len(rule.value)}"
            )
        return tuple(_convert(item, hint, where, context) for item in rule.value)
    if not isinstance(rule.value, dict) or set(rule.value) - {"scale", "offset"}:
        raise context.error(where, "expected a list or a rule {scale: a, offset: b}", rule.line)
    scale = rule.value.get("scale", _Node(1, rule.line)).value
    offset = rule.value.get("offset", _Node(0, rule.line)).value
    numbers = (scale, offset, *values)
    if not all(isinstance(number, int | float) and not isinstance(number, bool) for number in numbers):
        raise context.error(where, "expected numeric variant values, scale and offset", rule.line)
    return tuple(_convert(_Node(scale * value + offset, rule.line), hint, where, context) for value in values)


# ---- checks across fields ------------------------------------------------------------------------------


def _dotted(scenario: Scenario, key: str) -> Any:
    value: Any = scenario
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _replace_dotted(obj: Any, key: str, value: Any) -> Any:
    head, _, rest = key.partition(".")
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: _replace_dotted(getattr(obj, head), rest, value)})


def _check(scenario: Scenario, root: _Node, context: _Context) -> None:
    variant = (
        "" if scenario.variants is None and root.value.get("variants") is None else f" ({scenario.name})"
    )
    for key, (accepts, expected) in LIMITS.items():
        value = _dotted(scenario, key)
        if not accepts(value):
            raise context.error(key, f"expected {expected}, found {shown(value)}{variant}")
    _check_map(scenario.map, root.value.get("map"), context)
    _check_map_size(scenario.map, context, variant)
    _check_agents(scenario, root.value.get("agents"), context, variant)


def _check_map(spec: MapSpec, node: _Node | None, context: _Context) -> None:
    given = set(node.value) - {"generator"} if node is not None and isinstance(node.value, dict) else set()
    uses = GENERATOR_KEYS[spec.generator]
    unused = sorted(given - set(uses))
    if unused:
        raise context.error(
            f"map.{unused[0]}", f"not used by generator '{spec.generator}' (it uses: {', '.join(uses)})"
        )
    if spec.generator in ("ascii", "movingai", "benchmark"):
        required = "ascii" if spec.generator == "ascii" else "path"
        if getattr(spec, required) is None:
            raise context.error(
                "map", f"expected 'map.{required}' for generator '{spec.generator}', found none"
            )
    if spec.generator == "benchmark":
        if spec.name is None:
            raise context.error(
                "map", "expected 'map.name' (a glob over map names, e.g. 'puzzle-*'), found none"
            )
        if len(spec.name) > MAX_PATTERN_CHARACTERS or control_character(spec.name) is not None:
            raise context.error(
                "map.name",
                f"expected a glob of at most {MAX_PATTERN_CHARACTERS} printable characters, "
                f"found {shown(spec.name)}",
            )


def _map_shape(spec: MapSpec) -> tuple[int, int] | None:
    """The map's (height, width) when it is known without generating it."""
    if spec.generator in ("random", "maze"):
        return spec.height, spec.width
    if spec.generator == "bottleneck":
        return spec.corridor_length + 2 * BOTTLENECK_ROOM_ROWS, BOTTLENECK_WIDTH
    if spec.generator == "warehouse":  # sim.maps.warehouse_ascii's layout
        height = 1 + 4 * spec.shelf_rows
        width = 1 + 6 * spec.station_columns + (spec.shelf_length + 1) * spec.shelf_columns
        return height, width
    return None


def _check_map_size(spec: MapSpec, context: _Context, variant: str) -> None:
    shape = _map_shape(spec)
    if shape is None:
        return
    height, width = shape
    if max(height, width) > MAX_SIDE or height * width > MAX_CELLS:
        raise context.error(
            "map",
            f"expected a map of at most {MAX_SIDE} rows and columns and {MAX_CELLS} cells, found "
            f"{height}x{width} from generator '{spec.generator}'{variant}",
        )


def _check_agents(scenario: Scenario, node: _Node | None, context: _Context, variant: str) -> None:
    spec, agents = scenario.map, scenario.agents
    given = set(node.value) if node is not None and isinstance(node.value, dict) else set()
    for name, placement in (("starts", "fixed"), ("goals", "fixed"), ("scen", "scen")):
        if name in given and agents.placement != placement:
            raise context.error(
                f"agents.{name}",
                f"used only with placement '{placement}', found placement '{agents.placement}'",
            )
    restart = scenario.dynamics.on_target == "restart"
    sequences = agents.goals is not None and any(_is_sequence(goal) for goal in agents.goals)
    if agents.placement != "random" and restart and not sequences:
        raise context.error(
            "dynamics.on_target",
            f"expected 'finish' or 'nothing' with placement '{agents.placement}' (one fixed goal per agent), "
            "or per-agent goal lists in 'agents.goals' (lifelong sequences), found 'restart'",
            near="agents.placement",
        )
    if sequences and not restart:
        raise context.error(
            "agents.goals",
            f"per-agent goal lists need on_target 'restart', found '{scenario.dynamics.on_target}'",
        )
    letters = None
    if spec.generator == "ascii" and spec.ascii is not None:
        letters = _check_ascii(spec.ascii, agents, context, variant)
    if agents.placement == "scen":
        if spec.generator != "movingai" or agents.scen is None:
            raise context.error(
                "agents.placement", "placement 'scen' needs generator 'movingai' and 'agents.scen'"
            )
        _resolve_file(scenario, "agents.scen", context)
    if agents.placement == "rooms":
        if spec.generator != "bottleneck":
            raise context.error(
                "agents.placement",
                f"placement 'rooms' needs generator 'bottleneck', found '{spec.generator}'",
            )
        room = BOTTLENECK_ROOM_ROWS * BOTTLENECK_WIDTH
        if (agents.count + 1) // 2 > room:
            raise context.error(
                "agents.count",
                f"expected at most {2 * room} agents in the rooms, found {agents.count}{variant}",
            )
    if agents.placement == "fixed" and letters is None:
        _check_fixed(agents, _map_shape(spec), context, variant)
    if spec.generator in ("movingai", "benchmark"):
        _resolve_file(scenario, "map.path", context)
    shape = _map_shape(spec)
    if agents.placement == "random" and shape is not None and 2 * agents.count > shape[0] * shape[1]:
        raise context.error(
            "agents.count",
            f"expected at most {shape[0] * shape[1] // 2} agents (2 cells each) "
            f"on a {shape[0]}x{shape[1]} map, found {agents.count}{variant}",
        )


def _check_ascii(text: str, agents: AgentsSpec, context: _Context, variant: str) -> int | None:
    """Validate an ASCII map against the agents block; return the number of lettered agents, or None."""
    try:
        parsed = parse_ascii_map(text)
    except ValueError as error:
        raise context.error("map.ascii", f"{error}{variant}") from None
    if parsed.starts is not None:
        if agents.placement != "fixed" or agents.starts is not None:
            raise context.error(
                "agents.placement",
                "the map's letters fix the starts and goals: expected placement "
                "'fixed' without 'agents.starts'",
                near="map.ascii",
            )
        if agents.count != len(parsed.starts):
            raise context.error(
                "agents.count",
                f"expected {len(parsed.starts)} (the map's letter pairs), found {agents.count}{variant}",
            )
        return len(parsed.starts)
    if agents.placement == "random":
        free = int((parsed.obstacles == 0).sum())
        if parsed.possible_starts is not None:
            capacity = min(len(parsed.possible_starts), len(parsed.possible_goals))
            what = "possible start and goal cells"
        else:
            capacity, what = free // 2, "free cells / 2"
        if agents.count > capacity:
            raise context.error(
                "agents.count", f"expected at most {capacity} agents ({what}), found {agents.count}{variant}"
            )
    return None


def _check_fixed(agents: AgentsSpec, shape: tuple[int, int] | None, context: _Context, variant: str) -> None:
    for name in ("starts", "goals"):
        cells = getattr(agents, name)
        if cells is None:
            raise context.error("agents.placement", f"placement 'fixed' needs 'agents.{name}', found none")
        if len(cells) != agents.count:
            raise context.error(
                f"agents.{name}", f"expected {agents.count} cells (agents.count), found {len(cells)}{variant}"
            )
        for index, entry in enumerate(cells):
            sequence = entry if _is_sequence(entry) else (entry,)
            if not sequence:
                raise context.error(f"agents.{name}[{index}]", "expected at least one goal cell, found []")
            for position, (row, col) in enumerate(sequence):
                inside = row >= 0 and col >= 0 and (shape is None or (row < shape[0] and col < shape[1]))
                if not inside:
                    bounds = f"inside the {shape[0]}x{shape[1]} map" if shape else "non-negative"
                    where = f"agents.{name}[{index}]" + (f"[{position}]" if _is_sequence(entry) else "")
                    raise context.error(where, f"expected a cell {bounds}, found [{row}, {col}]{variant}")
    if len(set(agents.starts)) != len(agents.starts):
        raise context.error("agents.starts", "expected distinct start cells, found a repeated one")


def _is_sequence(goal: tuple) -> bool:
    """Whether an `agents.goals` entry is a goal sequence (a tuple of cells) rather than one cell."""
    return not goal or isinstance(goal[0], tuple)


def _resolve_file(scenario: Scenario, key: str, context: _Context) -> None:
    """Check that the file named at `key` exists (relative paths were resolved by `_resolve_paths`)."""
    path = _dotted(scenario, key)
    if not Path(path).is_file():
        raise context.error(key, f"expected an existing file, found {shown(path)}")
