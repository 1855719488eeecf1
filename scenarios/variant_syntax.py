"""The variants (curriculum) grammar of a scenario file: `variants: {key, values, linked}` with ranges
and linked rules, converted into `scenarios.Variants` (see `scenarios.loader`'s docstring for the syntax).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from coercion import field_hints
from scenarios.convert import convert, mismatch, unknown_key
from scenarios.errors import shown
from scenarios.limits import MAX_VARIANTS
from scenarios.nodes import Context, Node, plain
from scenarios.schema import Scenario, Variants, _frozen

VARIANT_BLOCKED = ("name", "description", "variants", "train", "eval", "seed")
VARIANT_KEYS = ("map.", "dynamics.max_episode_steps")
"""What variants may change (prefixes): a batch of environments builds its agents, observations, rewards
and rules once (`scenarios.variants.batchable_variants` refuses variants that change them)."""


def variant_context(context: Context, variants: Variants | None) -> Context:
    """A context that reports a problem with a varied field at the line of its variant values."""
    if variants is None:
        return context
    lines = dict(context.lines)
    lines[variants.key] = context.lines["variants.values"]
    for key in variants.linked:
        lines[key] = context.lines[f"variants.linked.{key}"]
    return dataclasses.replace(context, lines=lines)


def convert_variants(node: Node, context: Context) -> Variants:
    """The `variants` block as `Variants`: ranges spliced in, linked rules evaluated per variant."""
    context.lines["variants"] = node.line
    if not isinstance(node.value, dict):
        raise mismatch(node, Variants, "variants", context)
    for name in node.value:
        if name not in ("key", "values", "linked"):
            raise unknown_key(name, ["key", "values", "linked"], "variants", node, context)
    for required in ("key", "values"):
        if required not in node.value:
            raise context.error(f"variants.{required}", "expected this key, found it missing", node.line)
    key_node = node.value["key"]
    target_hint = _variant_hint(key_node, context, "variants.key")
    context.lines["variants.values"] = node.value["values"].line
    values = _variant_values(node.value["values"], target_hint, key_node.value, context)
    linked: dict[str, tuple[Any, ...]] = {}
    linked_node = node.value.get("linked", Node({}, node.line))
    if not isinstance(linked_node.value, dict):
        raise context.error("variants.linked", f"expected a mapping, found {shown(plain(linked_node))}")
    for linked_key, rule in linked_node.value.items():
        hint = _variant_hint(Node(linked_key, rule.line), context, f"variants.linked.{linked_key}")
        if linked_key == key_node.value:
            raise context.error("variants.linked", f"expected keys other than '{linked_key}'", rule.line)
        linked[linked_key] = _linked_values(rule, hint, linked_key, values, context)
    return Variants(key=key_node.value, values=values, linked=_frozen(linked))


def _variant_hint(key_node: Node, context: Context, where: str) -> Any:
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
        cls = field_hints(cls)[part]
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


def _variant_values(node: Node, hint: Any, key: str, context: Context) -> tuple[Any, ...]:
    if not isinstance(node.value, list) or not node.value:
        raise context.error(
            "variants.values", f"expected a non-empty list, found {shown(plain(node))}", node.line
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
        convert(
            item if isinstance(item, Node) else Node(item, node.line),
            hint,
            f"variants.values ({key})",
            context,
        )
        for item in values
    )


def _range(node: Node, context: Context, room: int) -> range:
    parts = node.value
    if set(parts) - {"from", "to", "step"} or not {"from", "to"} <= set(parts):
        raise context.error(
            "variants.values", "expected a range {from: A, to: B, step: C} (step optional)", node.line
        )
    bounds = [parts.get(name, Node(1, node.line)).value for name in ("from", "to", "step")]
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
    rule: Node, hint: Any, key: str, values: tuple[Any, ...], context: Context
) -> tuple[Any, ...]:
    where = f"variants.linked.{key}"
    context.lines[where] = rule.line
    if isinstance(rule.value, list):
        if len(rule.value) != len(values):
            raise context.error(
                where, f"expected {len(values)} values (one per variant), found {len(rule.value)}"
            )
        return tuple(convert(item, hint, where, context) for item in rule.value)
    if not isinstance(rule.value, dict) or set(rule.value) - {"scale", "offset"}:
        raise context.error(where, "expected a list or a rule {scale: a, offset: b}", rule.line)
    scale = rule.value.get("scale", Node(1, rule.line)).value
    offset = rule.value.get("offset", Node(0, rule.line)).value
    numbers = (scale, offset, *values)
    if not all(isinstance(number, int | float) and not isinstance(number, bool) for number in numbers):
        raise context.error(where, "expected numeric variant values, scale and offset", rule.line)
    return tuple(convert(Node(scale * value + offset, rule.line), hint, where, context) for value in values)


# ---- checks across fields ------------------------------------------------------------------------------
