"""Variants (curricula), the one place that knows them: a scenario's concrete variants and their labels,
the check that one batch of environments can play them all, and which variant each environment plays.

Only the map and the episode limit may vary (the grammar in `scenarios.variant_syntax` refuses other keys),
so one batch (`sim.GridEnv`) plays every variant with shared agents, observations, rewards and rules. A
batch either pins each environment to a variant (`variant_blocks`: training and evaluation, so every
variant is played in every rollout and every evaluation row has its own environments) or lets each episode
draw its variant from its seed (`variant_of_seed`: a `GridEnv` made without `env_variants`).
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


def batchable_variants(scenario: Scenario) -> list[Scenario]:
    """The concrete scenarios one batch plays (`[scenario]` without variants). ValueError when variants
    change anything but the map and the episode limit (possible only for a `Scenario` built in code)."""
    variants = expand_variants(scenario)
    for variant in variants:
        for block in ("agents", "observation", "reward"):
            if getattr(variant, block) != getattr(variants[0], block):
                raise ValueError(
                    f"scenario '{scenario.name}': variants of '{scenario.variants.key}' change the {block} "
                    f"block; GridEnv batches only variants that change the map and the episode limit"
                )
    return variants


def variant_labels(scenario: Scenario) -> list[str]:
    """One label per variant, `key=value` (evaluation rows), or `["all"]` without variants."""
    if scenario.variants is None:
        return ["all"]
    return [f"{scenario.variants.key}={value}" for value in scenario.variants.values]


def variant_blocks(scenario: Scenario, num_envs: int) -> tuple[int, ...]:
    """The variant each of `num_envs` environments plays: contiguous blocks in variant order, as even as
    possible, earlier variants taking the remainder (variant v gets len(range(v, num_envs, V))
    environments; V x K environments give each variant K). ValueError with fewer environments than
    variants."""
    count = len(expand_variants(scenario))
    if num_envs < count:
        raise ValueError(
            f"num_envs {num_envs}: need at least one environment per variant "
            f"({count} variants of {scenario.variants.key})"
        )
    return tuple(v for v in range(count) for _ in range(v, num_envs, count))


def variant_of_seed(seed: int, num_variants: int) -> int:
    """The variant the episode with `seed` plays when its environment is not pinned to one."""
    return seed % num_variants


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
