"""The scenario schema: frozen dataclasses that a YAML scenario file is validated into.

A `Scenario` says everything needed to build environments: the map, the agents, the dynamics, what agents
observe, how they are rewarded, the seed, and optional variants (curricula). `train` and `eval` blocks are
kept as validated, read-only mappings for the training and evaluation code that owns their meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

MapGenerator = Literal["random", "maze", "warehouse", "bottleneck", "ascii", "movingai", "benchmark"]
Placement = Literal["random", "fixed", "scen", "rooms"]
CollisionSystem = Literal["priority", "block_both", "soft"]
OnTarget = Literal["finish", "nothing", "restart"]
ObservationType = Literal["default", "POMAPF", "MAPF"]
RewardScheme = Literal["pogema", "sparse", "dense", "directional", "directional_negative", "moving_negative"]
Channel = Literal["obstacles", "agents", "goal", "path", "detour", "other_goals"]

DEFAULT_CHANNELS: tuple[Channel, ...] = ("obstacles", "agents", "goal")
"""POGEMA's observation channels, in its order."""

BOTTLENECK_WIDTH = 9
"""Columns of SRMT's bottleneck map; its corridor is the middle column."""
BOTTLENECK_ROOM_ROWS = 2
"""Rows of each of the bottleneck map's two rooms (the map is corridor_length + 2 * 2 rows high)."""


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class MapSpec:
    """Where the obstacles come from.

    `random`: POGEMA's i.i.d. obstacles (`width` x `height`, `density`); `maze`, `warehouse`, `bottleneck`:
    procedural generators; `ascii`: an inline map in POGEMA's characters (`. # @ $ !` and agent letters);
    `movingai`: a MovingAI `.map` file at `path`; `benchmark`: a POGEMA-benchmark `maps.yaml` at `path`, with
    `name` a glob over its map names (`fnmatch`, case-sensitive, e.g. `validation-random-seed-*`; quote a
    glob that starts with `*` in YAML), one matching map drawn per episode.

    Generator parameters: `maze` uses `width`, `height` and `loops` (the fraction of the walls left by a
    perfect maze that are knocked out, adding cycles so agents can pass each other); `warehouse` uses
    `shelf_rows` x `shelf_columns` blocks of shelves `shelf_length` cells long with `station_columns` pairs
    of goal-only station columns on each side (the defaults give POGEMA's 33 x 46 `wfi_warehouse`);
    `bottleneck` uses `corridor_length` (the SRMT map: 9 columns, height corridor_length + 4).
    """

    generator: MapGenerator = "random"
    width: int = 8
    height: int = 8
    density: float = 0.3
    ascii: str | None = None
    path: str | None = None
    name: str | None = None
    corridor_length: int = 10
    loops: float = 0.0
    shelf_rows: int = 8
    shelf_columns: int = 3
    shelf_length: int = 10
    station_columns: int = 2


@dataclass(frozen=True)
class AgentsSpec:
    """How many agents there are and where they start and aim.

    `random`: POGEMA's placement (distinct starts and goals, each goal in its start's component); `fixed`:
    the given `starts` and `goals` (row, col); `scen`: a MovingAI `.scen` file at `scen`; `rooms`: the
    bottleneck layout, each agent starting in one room with its goal in the other.

    With `on_target: restart` each entry of `goals` is an agent's goal sequence, a list of cells visited in
    order and cycled (POGEMA's `targets_xy` sequences); a single cell there is a one-goal sequence.
    """

    count: int = 1
    placement: Placement = "random"
    starts: tuple[tuple[int, int], ...] | None = None
    goals: tuple[tuple[int, int] | tuple[tuple[int, int], ...], ...] | None = None
    scen: str | None = None


@dataclass(frozen=True)
class DynamicsSpec:
    """How agents move and when episodes end (POGEMA 1.4.0 semantics).

    `pogema_bugs=True` reproduces POGEMA 1.4.0's soft-collision occupancy bug; GridSwarm's own default is the
    correct occupancy.
    """

    collision_system: CollisionSystem = "soft"
    on_target: OnTarget = "finish"
    max_episode_steps: int = 64
    pogema_bugs: bool = False


@dataclass(frozen=True)
class ObservationSpec:
    """What each agent sees.

    `type` `default` gives the (C, F, F) window with F = 2 * radius + 1 and the listed `channels`;
    `POMAPF` and `MAPF` add POGEMA's coordinates. `neighbours` > 0 also reports, per agent, the indices of
    up to that many nearest agents within `neighbour_radius` cells (Chebyshev distance).
    """

    radius: int = 5
    type: ObservationType = "default"
    channels: tuple[Channel, ...] = DEFAULT_CHANNELS
    neighbours: int = 0
    neighbour_radius: float = 5.0


@dataclass(frozen=True)
class RewardSpec:
    """The reward scheme: POGEMA's own, or one of the SRMT paper's (arXiv 2501.13200, Table 2).

    `step_cost` is the paper's c (0.01): dense and negative schemes charge it, directional ones pay c / 2 for
    following the shortest path.
    """

    scheme: RewardScheme = "pogema"
    step_cost: float = 0.01


@dataclass(frozen=True)
class Variants:
    """A curriculum: the scenario is instantiated once per value of one field (dotted `key`, e.g.
    `map.corridor_length`); environments draw a variant at every reset.

    `linked` gives other fields a value per variant, parallel to `values` (e.g. `dynamics.max_episode_steps`
    growing with the corridor length). `scenarios.expand_variants` makes the concrete scenarios.
    """

    key: str
    values: tuple[Any, ...]
    linked: Mapping[str, tuple[Any, ...]] = field(default_factory=_frozen)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. Build it with `scenarios.load` (YAML) or directly.

    `train` and `eval` are kept as read-only mappings of plain YAML values: the loader checks only that they
    are mappings; the training and evaluation code validates their keys. `source` is the file it came from.
    """

    name: str = "unnamed"
    description: str = ""
    map: MapSpec = field(default_factory=MapSpec)
    agents: AgentsSpec = field(default_factory=AgentsSpec)
    dynamics: DynamicsSpec = field(default_factory=DynamicsSpec)
    observation: ObservationSpec = field(default_factory=ObservationSpec)
    reward: RewardSpec = field(default_factory=RewardSpec)
    seed: int | None = 0
    variants: Variants | None = None
    train: Mapping[str, Any] = field(default_factory=_frozen)
    eval: Mapping[str, Any] = field(default_factory=_frozen)
    source: str | None = None
