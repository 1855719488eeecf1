"""Checks across fields of a converted scenario (each variant's): value ranges, the keys each map
generator reads, map sizes, agent placement against the map, and files named by the scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fsio import control_character
from scenarios.asciimap import parse_ascii_map
from scenarios.errors import shown
from scenarios.limits import (
    MAX_CELLS,
    MAX_EPISODE_STEPS,
    MAX_NEIGHBOUR_RADIUS,
    MAX_NEIGHBOURS,
    MAX_PATTERN_CHARACTERS,
    MAX_SIDE,
)
from scenarios.nodes import Context, Node
from scenarios.schema import BOTTLENECK_ROOM_ROWS, BOTTLENECK_WIDTH, AgentsSpec, MapSpec, Scenario
from scenarios.variants import dotted

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


def check(scenario: Scenario, root: Node, context: Context) -> None:
    """Checks one concrete scenario (a variant) across its fields; `root` is the file's node, for the
    keys it gave."""
    variant = (
        "" if scenario.variants is None and root.value.get("variants") is None else f" ({scenario.name})"
    )
    for key, (accepts, expected) in LIMITS.items():
        value = dotted(scenario, key)
        if not accepts(value):
            raise context.error(key, f"expected {expected}, found {shown(value)}{variant}")
    _check_map(scenario.map, root.value.get("map"), context)
    _check_map_size(scenario.map, context, variant)
    _check_agents(scenario, root.value.get("agents"), context, variant)


def _check_map(spec: MapSpec, node: Node | None, context: Context) -> None:
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


def map_shape(spec: MapSpec) -> tuple[int, int] | None:
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


def _check_map_size(spec: MapSpec, context: Context, variant: str) -> None:
    shape = map_shape(spec)
    if shape is None:
        return
    height, width = shape
    if max(height, width) > MAX_SIDE or height * width > MAX_CELLS:
        raise context.error(
            "map",
            f"expected a map of at most {MAX_SIDE} rows and columns and {MAX_CELLS} cells, found "
            f"{height}x{width} from generator '{spec.generator}'{variant}",
        )


def _check_agents(scenario: Scenario, node: Node | None, context: Context, variant: str) -> None:
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
        _check_fixed(agents, map_shape(spec), context, variant)
    if spec.generator in ("movingai", "benchmark"):
        _resolve_file(scenario, "map.path", context)
    shape = map_shape(spec)
    if agents.placement == "random" and shape is not None and 2 * agents.count > shape[0] * shape[1]:
        raise context.error(
            "agents.count",
            f"expected at most {shape[0] * shape[1] // 2} agents (2 cells each) "
            f"on a {shape[0]}x{shape[1]} map, found {agents.count}{variant}",
        )


def _check_ascii(text: str, agents: AgentsSpec, context: Context, variant: str) -> int | None:
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


def _check_fixed(agents: AgentsSpec, shape: tuple[int, int] | None, context: Context, variant: str) -> None:
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


def _resolve_file(scenario: Scenario, key: str, context: Context) -> None:
    """Check that the file named at `key` exists (relative paths were resolved by `_resolve_paths`)."""
    path = dotted(scenario, key)
    if not Path(path).is_file():
        raise context.error(key, f"expected an existing file, found {shown(path)}")
