"""YAML scenarios: the schema, the loader with precise errors, and the built-in library.

scenario = scenarios.load("bottleneck")          # a built-in name, a YAML path, or a Scenario
for variant in scenarios.expand_variants(scenario): ...
"""

from scenarios.errors import ScenarioError
from scenarios.loader import builtin_names, dump, load, loads, to_dict
from scenarios.schema import (
    AgentsSpec,
    DynamicsSpec,
    MapSpec,
    ObservationSpec,
    RewardSpec,
    Scenario,
    Variants,
)
from scenarios.variants import expand_variants

__all__ = [
    "AgentsSpec",
    "DynamicsSpec",
    "MapSpec",
    "ObservationSpec",
    "RewardSpec",
    "Scenario",
    "ScenarioError",
    "Variants",
    "builtin_names",
    "dump",
    "expand_variants",
    "load",
    "loads",
    "to_dict",
]
