"""Variants (curricula), the one place that knows them: a scenario's concrete variants, the check that
one batch of environments can play them all, and which variant each environment of a batch plays.

Only the map and the episode limit may vary (the grammar in `scenarios.variant_syntax` refuses other keys),
so a batch shares its agents, observations, rewards and rules.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from scenarios.schema import Scenario


def expand_variants(scenario: Scenario) -> list[Scenario]:
    """The concrete scenarios of a curriculum, one per variant value (or `[scenario]` without variants)."""
    variants = scenario.variants
    if variants is None:
        return [scenario]
    expanded = []
    for index, value in enumerate(variants.values):
        concrete = replace_dotted(dataclasses.replace(scenario, variants=None), variants.key, value)
        for key, values in variants.linked.items():
            concrete = replace_dotted(concrete, key, values[index])
        expanded.append(dataclasses.replace(concrete, name=f"{scenario.name}[{variants.key}={value}]"))
    return expanded


def dotted(scenario: Scenario, key: str) -> Any:
    """The value of the dotted field `key` (e.g. `map.corridor_length`)."""
    value: Any = scenario
    for part in key.split("."):
        value = getattr(value, part)
    return value


def replace_dotted(obj: Any, key: str, value: Any) -> Any:
    """A copy of the frozen dataclass `obj` with the dotted field `key` set to `value`."""
    head, _, rest = key.partition(".")
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: replace_dotted(getattr(obj, head), rest, value)})
