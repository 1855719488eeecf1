"""YAML scenarios: the schema, the loader with precise errors, and the built-in library."""

from scenarios.schema import (
    AgentsSpec,
    DynamicsSpec,
    MapSpec,
    ObservationSpec,
    RewardSpec,
    Scenario,
    Variants,
)

__all__ = ["AgentsSpec", "DynamicsSpec", "MapSpec", "ObservationSpec", "RewardSpec", "Scenario", "Variants"]
