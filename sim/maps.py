"""Map generators: a scenario's map and agents blocks -> one episode's `MapLayout`.

Generators (and what the seed draws):
- `random`: POGEMA's i.i.d. obstacles `default_rng(seed).binomial(1, density, (H, W))` (the obstacles);
- `maze`: a recursive backtracker over the even cells, then a `loops` fraction of walls opened (both);
- `warehouse`: `#` shelf blocks with `@` start-only cells above and below and `$$` goal-only station
  columns on both sides, as POGEMA-benchmark's `wfi_warehouse` (the defaults give that map; no seed);
- `bottleneck`: SRMT's map, 2 room rows, `corridor_length` rows of `####.####`, 2 room rows (no seed);
- `ascii`: POGEMA's ASCII characters (`scenarios.asciimap`); `movingai`: a MovingAI `.map` file (no seed);
- `benchmark`: one map of a POGEMA-benchmark `maps.yaml`, drawn as pogema-toolbox's MultiMapWrapper does,
  index `default_rng(seed).integers(0, count)` into the sorted names that match `map.name`; the pattern is
  a glob (`fnmatch`, case-sensitive: `validation-random-seed-*`), where pogema-toolbox takes a regular
  expression: a glob matches in linear time, whatever a scenario file holds.

Placement: `random` leaves starts and goals to the simulator (POGEMA's placement, or the `@ $` lists);
`fixed` takes `agents.starts` / `agents.goals` (or the map's letters) and, as POGEMA does, clears obstacles
under them; `scen` takes the first `agents.count` problems of a MovingAI `.scen` file; `rooms` is SRMT's
bottleneck placement (see `room_placement`). `build_layout` checks that the agents fit as the simulator
will place them (POGEMA's placement puts a start and its goal in one connected component, so a component
of s free cells holds s // 2 agents), so a map without room is a `ScenarioError` before an episode starts.
A scenario with variants must be expanded first (`scenarios.expand_variants`): which variant an episode
uses is the environment's choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

import numpy as np

from scenarios.asciimap import AsciiMap, parse_ascii_map
from scenarios.errors import ScenarioError, scenario_error
from scenarios.schema import BOTTLENECK_ROOM_ROWS, BOTTLENECK_WIDTH, MapSpec, Scenario
from sim.kernels.tasks import label_components
from sim.layout import MapLayout
from sim.mapfiles import benchmark_map, read_benchmark_maps, read_movingai_map, read_scen


def build_layout(scenario: Scenario, seed: int | None) -> MapLayout:
    """The map and fixed agent cells of one episode of `scenario` drawn with `seed` (None: OS entropy)."""
    if scenario.variants is not None:
        raise ValueError(
            f"scenario '{scenario.name}' has variants: build layouts of scenarios.expand_variants"
        )
    layout = GENERATORS[scenario.map.generator](scenario.map, seed)
    layout = _place_agents(layout, scenario, seed)
    _check_capacity(layout, scenario)
    return layout


# ---- obstacle generators -------------------------------------------------------------------------------


def random_obstacles(height: int, width: int, density: float, seed: int | None) -> np.ndarray:
    """POGEMA's random map: i.i.d. obstacles, (height, width) uint8."""
    return np.random.default_rng(seed).binomial(1, density, (height, width)).astype(np.uint8)


def maze_obstacles(height: int, width: int, loops: float, seed: int | None) -> np.ndarray:
    """A maze (height, width) uint8: cells at even (row, col), carved by a randomized depth-first search.

    The free space is one 4-connected component. `loops` in [0, 1] is the fraction of the remaining walls
    between two cells that are removed afterwards (0: a perfect maze, one path between any two cells).
    """
    rng = np.random.default_rng(seed)
    cell_rows, cell_cols = (height + 1) // 2, (width + 1) // 2
    obstacles = np.ones((height, width), dtype=np.uint8)
    obstacles[::2, ::2] = 0
    steps = ((-1, 0), (1, 0), (0, -1), (0, 1))
    # One shuffled neighbour order per cell, drawn at once: the walk stays O(cells) in Python.
    orders = np.argsort(rng.random((cell_rows, cell_cols, 4)), axis=2)
    visited = np.zeros((cell_rows, cell_cols), dtype=bool)
    tried = np.zeros((cell_rows, cell_cols), dtype=np.int64)
    start = (int(rng.integers(cell_rows)), int(rng.integers(cell_cols)))
    visited[start] = True
    stack = [start]
    while stack:
        row, col = stack[-1]
        if tried[row, col] == 4:
            stack.pop()
            continue
        d_row, d_col = steps[orders[row, col, tried[row, col]]]
        tried[row, col] += 1
        next_row, next_col = row + d_row, col + d_col
        if 0 <= next_row < cell_rows and 0 <= next_col < cell_cols and not visited[next_row, next_col]:
            visited[next_row, next_col] = True
            obstacles[row + next_row, col + next_col] = (
                0  # the wall between the two cells, in map coordinates
            )
            stack.append((next_row, next_col))
    _remove_walls(obstacles, loops, rng)
    return obstacles


def _remove_walls(obstacles: np.ndarray, fraction: float, rng: np.random.Generator) -> None:
    """Open `fraction` of the walls that separate two maze cells (row- or column-adjacent)."""
    height, width = obstacles.shape
    rows, cols = np.mgrid[0:height, 0:width]
    between_rows = (rows % 2 == 1) & (cols % 2 == 0) & (rows + 1 < height)
    between_cols = (rows % 2 == 0) & (cols % 2 == 1) & (cols + 1 < width)
    walls = np.argwhere((between_rows | between_cols) & (obstacles == 1))
    count = round(fraction * len(walls))
    if count:
        chosen = walls[rng.choice(len(walls), size=count, replace=False)]
        obstacles[chosen[:, 0], chosen[:, 1]] = 0


def warehouse_ascii(shelf_rows: int, shelf_columns: int, shelf_length: int, station_columns: int) -> str:
    """A warehouse in POGEMA's characters: blocks of `#` shelves with `@` (start-only) cells above and below,
    `$$` goal-only station columns on both sides, one-cell aisles (`.`) everywhere between.
    """
    stations = "$$." * station_columns

    def line(shelf: str) -> str:
        return "." + stations + (shelf * shelf_length + ".") * shelf_columns + stations

    open_row = "." * len(line("."))
    block = [line("@"), line("#"), line("@"), open_row]
    return "\n".join([open_row, *block * shelf_rows])


def bottleneck_obstacles(corridor_length: int) -> np.ndarray:
    """SRMT's bottleneck (corridor_length + 4, 9) uint8: two rooms joined by a corridor at column 4."""
    obstacles = np.zeros((corridor_length + 2 * BOTTLENECK_ROOM_ROWS, BOTTLENECK_WIDTH), dtype=np.uint8)
    obstacles[BOTTLENECK_ROOM_ROWS : BOTTLENECK_ROOM_ROWS + corridor_length, :] = 1
    obstacles[BOTTLENECK_ROOM_ROWS : BOTTLENECK_ROOM_ROWS + corridor_length, BOTTLENECK_WIDTH // 2] = 0
    return obstacles


def room_placement(corridor_length: int, count: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """SRMT's bottleneck placement: starts (count, 2) and goals (count, 2) int64.

    Even agents start in the top room (rows 0-1) with a goal in the bottom room, odd agents the reverse.
    With `rng = default_rng(seed)`, each agent's start is drawn as (rng.integers(room rows), rng.integers(9)),
    all starts first, then all goals: for two agents this is exactly the SRMT code's draw sequence. A start
    (goal) equal to an earlier agent's start (goal) is redrawn; a goal may equal another agent's start.
    """
    rng = np.random.default_rng(seed)
    top = (0, BOTTLENECK_ROOM_ROWS)
    bottom = (BOTTLENECK_ROOM_ROWS + corridor_length, 2 * BOTTLENECK_ROOM_ROWS + corridor_length)
    start_rooms = [top if agent % 2 == 0 else bottom for agent in range(count)]
    goal_rooms = [bottom if agent % 2 == 0 else top for agent in range(count)]
    return _draw_in_rooms(rng, start_rooms), _draw_in_rooms(rng, goal_rooms)


def _draw_in_rooms(rng: np.random.Generator, rooms: list[tuple[int, int]]) -> np.ndarray:
    cells = np.zeros((len(rooms), 2), dtype=np.int64)
    taken: set[tuple[int, int]] = set()
    for agent, (first_row, end_row) in enumerate(rooms):
        cell = (int(rng.integers(first_row, end_row)), int(rng.integers(0, BOTTLENECK_WIDTH)))
        while cell in taken:
            cell = (int(rng.integers(first_row, end_row)), int(rng.integers(0, BOTTLENECK_WIDTH)))
        taken.add(cell)
        cells[agent] = cell
    return cells


# ---- one builder per generator: MapSpec, seed -> MapLayout (obstacles and what the map fixes) -----------


def layout_from_ascii(parsed: AsciiMap, name: str) -> MapLayout:
    """The layout a parsed ASCII map fixes: its obstacles, possible start and goal cells, and agents."""
    return MapLayout(
        obstacles=parsed.obstacles,
        possible_starts=parsed.possible_starts,
        possible_goals=parsed.possible_goals,
        starts=parsed.starts,
        goals=parsed.goals,
        name=name,
    )


@lru_cache(maxsize=64)
def _parsed(text: str) -> AsciiMap:
    parsed = parse_ascii_map(text)
    for array in (
        parsed.obstacles,
        parsed.starts,
        parsed.goals,
        parsed.possible_starts,
        parsed.possible_goals,
    ):
        if array is not None:
            array.setflags(write=False)
    return parsed


def _random_layout(spec: MapSpec, seed: int | None) -> MapLayout:
    obstacles = random_obstacles(spec.height, spec.width, spec.density, seed)
    return MapLayout(obstacles=obstacles, name=f"random-{spec.height}x{spec.width}")


def _maze_layout(spec: MapSpec, seed: int | None) -> MapLayout:
    obstacles = maze_obstacles(spec.height, spec.width, spec.loops, seed)
    return MapLayout(obstacles=obstacles, name=f"maze-{spec.height}x{spec.width}")


def _warehouse_layout(spec: MapSpec, seed: int | None) -> MapLayout:
    text = warehouse_ascii(spec.shelf_rows, spec.shelf_columns, spec.shelf_length, spec.station_columns)
    return layout_from_ascii(
        _parsed(text), f"warehouse-{spec.shelf_rows}x{spec.shelf_columns}x{spec.shelf_length}"
    )


def _bottleneck_layout(spec: MapSpec, seed: int | None) -> MapLayout:
    return MapLayout(
        obstacles=bottleneck_obstacles(spec.corridor_length), name=f"bottleneck-{spec.corridor_length}"
    )


def _ascii_layout(spec: MapSpec, seed: int | None) -> MapLayout:
    try:
        parsed = _parsed(spec.ascii or "")
    except ValueError as error:
        raise ScenarioError(f"map.ascii: {error}") from None
    return layout_from_ascii(parsed, "ascii")


def _movingai_layout(spec: MapSpec, seed: int | None) -> MapLayout:
    path = str(spec.path)
    return MapLayout(obstacles=read_movingai_map(path), name=Path(path).stem)


def _benchmark_layout(spec: MapSpec, seed: int | None) -> MapLayout:
    names = _benchmark_names(spec)
    name = names[int(np.random.default_rng(seed).integers(0, len(names)))]
    return layout_from_ascii(benchmark_map(str(spec.path), name), name)


def _benchmark_names(spec: MapSpec) -> list[str]:
    """The sorted names of a benchmark map file that match the glob `spec.name`."""
    path, pattern = str(spec.path), str(spec.name)
    names = sorted(name for name in read_benchmark_maps(path) if fnmatchcase(name, pattern))
    if not names:
        raise scenario_error(path, None, "", f"no map name matches the glob {pattern!r}")
    return names


GENERATORS: dict[str, Callable[[MapSpec, int | None], MapLayout]] = {
    "random": _random_layout,
    "maze": _maze_layout,
    "warehouse": _warehouse_layout,
    "bottleneck": _bottleneck_layout,
    "ascii": _ascii_layout,
    "movingai": _movingai_layout,
    "benchmark": _benchmark_layout,
}


def largest_map_shape(variants: Sequence[Scenario]) -> tuple[int, int]:
    """The (height, width) that bounds every map the concrete scenarios `variants` (a scenario's
    `scenarios.expand_variants`, expanded once by the caller) can draw: every variant, every benchmark map
    its glob matches. A batch of environments sizes its grid buffers with it once."""
    shapes = [shape for variant in variants for shape in _possible_shapes(variant.map)]
    return (max(height for height, _ in shapes), max(width for _, width in shapes))


def _possible_shapes(spec: MapSpec) -> list[tuple[int, int]]:
    if spec.generator in ("random", "maze"):
        return [(spec.height, spec.width)]
    if spec.generator == "benchmark":
        return [benchmark_map(str(spec.path), name).obstacles.shape for name in _benchmark_names(spec)]
    return [GENERATORS[spec.generator](spec, 0).shape]  # the other generators' shapes ignore the seed


# ---- placement -----------------------------------------------------------------------------------------


def _place_agents(layout: MapLayout, scenario: Scenario, seed: int | None) -> MapLayout:
    agents = scenario.agents
    if agents.placement == "rooms":
        starts, goals = room_placement(scenario.map.corridor_length, agents.count, seed)
    elif agents.placement == "scen":
        starts, goals = _scen_cells(layout, scenario)
    elif agents.placement == "fixed" and agents.starts is not None and agents.goals is not None:
        starts = np.asarray(agents.starts, dtype=np.int64).reshape(-1, 2)
        goals = _goal_array(agents.goals)
    else:
        return layout
    goal_cells = goals.reshape(-1, 2)
    goal_cells = goal_cells[goal_cells[:, 0] >= 0]  # every goal of every sequence, padding dropped
    _check_inside(layout, scenario, starts, "starts")
    _check_inside(layout, scenario, goal_cells, "goals")
    obstacles = layout.obstacles
    if obstacles[starts[:, 0], starts[:, 1]].any() or obstacles[goal_cells[:, 0], goal_cells[:, 1]].any():
        obstacles = obstacles.copy()  # POGEMA clears obstacles under explicit starts and goals
        obstacles[starts[:, 0], starts[:, 1]] = 0
        obstacles[goal_cells[:, 0], goal_cells[:, 1]] = 0
    return MapLayout(obstacles, layout.possible_starts, layout.possible_goals, starts, goals, layout.name)


def _goal_array(goals: tuple) -> np.ndarray:
    """`agents.goals` as (N, 2) int64, or, when any entry is a goal sequence, as (N, L, 2) sequences padded
    with rows of -1 (a single cell is a one-goal sequence)."""
    if not any(isinstance(goal[0], tuple) for goal in goals):
        return np.asarray(goals, dtype=np.int64).reshape(-1, 2)
    sequences = [goal if isinstance(goal[0], tuple) else (goal,) for goal in goals]
    array = np.full((len(sequences), max(len(s) for s in sequences), 2), -1, dtype=np.int64)
    for agent, sequence in enumerate(sequences):
        array[agent, : len(sequence)] = sequence
    return array


def _check_inside(layout: MapLayout, scenario: Scenario, cells: np.ndarray, name: str) -> None:
    height, width = layout.shape
    outside = (cells[:, 0] < 0) | (cells[:, 0] >= height) | (cells[:, 1] < 0) | (cells[:, 1] >= width)
    if outside.any():
        index = int(np.argmax(outside))
        row, col = cells[index]
        raise scenario_error(
            _source(scenario),
            None,
            f"agents.{name}[{index}]",
            f"expected a cell inside the {height}x{width} map '{layout.name}', found [{row}, {col}]",
        )


def _scen_cells(layout: MapLayout, scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    path, count = str(scenario.agents.scen), scenario.agents.count
    entries = read_scen(path)
    if len(entries) < count:
        raise scenario_error(
            path, None, "", f"expected at least {count} problems (agents.count), found {len(entries)}"
        )
    for entry in entries[:count]:
        if entry.map_shape != layout.shape:
            raise scenario_error(
                path,
                entry.line,
                "",
                f"expected a problem for a {layout.shape[0]}x{layout.shape[1]} map "
                f"(height x width), found {entry.map_shape[0]}x{entry.map_shape[1]}",
            )
        for cell in (entry.start, entry.goal):
            inside = 0 <= cell[0] < layout.shape[0] and 0 <= cell[1] < layout.shape[1]
            if not inside or layout.obstacles[cell]:
                raise scenario_error(
                    path, entry.line, "", f"expected free cells, found (row {cell[0]}, col {cell[1]})"
                )
    first_at: dict[tuple[int, int], int] = {}
    for entry in entries[:count]:
        if entry.start in first_at:
            raise scenario_error(
                path, entry.line, "", f"expected distinct start cells, found (row {entry.start[0]}, col "
                f"{entry.start[1]}) again (line {first_at[entry.start]})",
            )  # fmt: skip
        first_at[entry.start] = entry.line
    starts = np.asarray([entry.start for entry in entries[:count]], dtype=np.int64)
    goals = np.asarray([entry.goal for entry in entries[:count]], dtype=np.int64)
    return starts, goals


def _check_capacity(layout: MapLayout, scenario: Scenario) -> None:
    """POGEMA's placement needs two free cells per agent (or enough `@`/`$` cells): say so before it fails."""
    count = scenario.agents.count
    if layout.starts is not None:
        if len(layout.starts) != count:
            raise scenario_error(
                _source(scenario),
                None,
                "agents.count",
                f"expected {len(layout.starts)} (the agents map '{layout.name}' places), found {count}",
            )
        return
    if layout.possible_starts is not None and layout.possible_goals is not None:
        capacity = min(len(layout.possible_starts), len(layout.possible_goals))
        what = "its possible start and goal cells"
    else:
        capacity = placement_capacity(layout.obstacles)
        what = "a start and a goal in one connected region per agent"
    if count > capacity:
        raise scenario_error(
            _source(scenario),
            None,
            "agents.count",
            f"expected at most {capacity} agents on map '{layout.name}' ({what}), found {count}",
        )


def placement_capacity(obstacles: np.ndarray) -> int:
    """How many agents POGEMA's placement fits on the (H, W) map: each connected component of s free
    cells holds s // 2 (a start and its goal), whatever the order the cells are drawn in."""
    labels = np.empty(obstacles.shape, dtype=np.int32)
    count = label_components(
        np.ascontiguousarray(obstacles, dtype=np.uint8), labels, np.empty(labels.size, np.int64)
    )
    sizes = np.bincount(labels[labels >= 0], minlength=count)
    return int((sizes // 2).sum())


def _source(scenario: Scenario) -> str:
    return scenario.source or scenario.name
