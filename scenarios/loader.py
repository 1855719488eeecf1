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
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fsio import control_character, read_text_bounded
from scenarios.checks import GENERATOR_KEYS, check
from scenarios.convert import FieldReader, convert_dataclass
from scenarios.errors import ScenarioError, shown
from scenarios.limits import MAX_FILE_BYTES
from scenarios.nodes import Context, Node, parse, plain
from scenarios.schema import MapSpec, Scenario, _frozen
from scenarios.variant_syntax import convert_variants, variant_context
from scenarios.variants import dotted, expand_variants, replace_dotted

__all__ = ["LIBRARY", "builtin_names", "dump", "expand_variants", "load", "loads", "to_dict"]

LIBRARY = Path(__file__).resolve().parent / "library"
NAME = re.compile(r"(?P<base>[A-Za-z0-9][A-Za-z0-9_.+-]{0,127})(\[[A-Za-z_.]+=[^\[\]]{1,512}\])?")
"""A scenario's name, and a variant's (`base[key=value]`, as `expand_variants` names them): the base has no
path separators or dot-dot, since it names run directories (`runs/<name>-...`)."""
PATH_KEYS = ("map.path", "agents.scen")


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
    context = Context(source=source, base=base or Path.cwd(), lines={})
    root = parse(text, context)
    if not isinstance(root.value, dict):
        # the kind only, not the text: a path named by mistake (/proc/self/environ) must not be echoed
        kind = "a list" if isinstance(root.value, list) else "a single value"
        raise context.error("", f"expected a mapping of scenario keys, found {kind}", root.line)
    scenario = convert_dataclass(root, Scenario, "", context, _SCENARIO_READERS)
    named = NAME.fullmatch(scenario.name)
    if "name" in root.value and (not named or ".." in named["base"] or control_character(scenario.name)):
        expected = "1-128 letters, digits and _.+- starting with a letter or digit, without '..'"
        raise context.error("name", f"expected {expected}, found {shown(scenario.name)}")
    if "name" not in root.value and source != "<string>":
        stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(source).stem).lstrip("._-")[:128]
        scenario = dataclasses.replace(scenario, name=stem.replace("..", "_") or "unnamed")
    scenario = _resolve_paths(dataclasses.replace(scenario, source=source), context.base)
    located = variant_context(context, scenario.variants)
    for variant in expand_variants(scenario):
        check(variant, root, located)
    return scenario


def _block(key: str) -> FieldReader:
    """A reader of the `train` or `eval` block: any mapping, kept as plain read-only values."""

    def read(node: Node, context: Context) -> Any:
        if not isinstance(node.value, dict):
            raise context.error(key, f"expected a mapping, found {shown(plain(node))}", node.line)
        return _frozen(plain(node))

    return read


_SCENARIO_READERS: dict[str, FieldReader] = {
    "variants": lambda node, context: None if node.value is None else convert_variants(node, context),
    "train": _block("train"),
    "eval": _block("eval"),
}


def _resolve_paths(scenario: Scenario, base: Path) -> Scenario:
    """Make `map.path` and `agents.scen` (and variant values of them) relative to the scenario's folder."""

    def resolved(path: Any) -> Any:
        return path if path is None or os.path.isabs(path) else os.path.normpath(base / path)

    for key in PATH_KEYS:
        scenario = replace_dotted(scenario, key, resolved(dotted(scenario, key)))
    variants = scenario.variants
    if variants is not None and variants.key in PATH_KEYS:
        values = tuple(resolved(value) for value in variants.values)
        scenario = dataclasses.replace(scenario, variants=dataclasses.replace(variants, values=values))
    return scenario


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
        values = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            default = field.default_factory() if callable(field.default_factory) else field.default
            is_map_key = used is not None and field.name != "generator"
            if field.name == "source" or (is_map_key and field.name not in used) or item == default:
                continue
            values[field.name] = _plain_value(item)
        return values
    if isinstance(value, Mapping):
        return {key: _plain_value(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain_value(item) for item in value]
    return value
