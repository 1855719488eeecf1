"""Exact goal distances for the planners, per agent, over a window of the map around the agent.

PIBT reads, at every step, the distance to its goal of each agent's cell and of its free neighbours, and
it needs the fields of all agents at once (one agent's inheritance chain visits many others). A full
field per live goal does not fit at scale (10,000 goals on 512x512 would be 10 GiB of int32, and
`sim.distance.DistanceCache` recomputes a field whenever more goals are live than its pool holds), and a
full-map breadth-first search per goal change (~0.8 ms at 512x512) would cost more than the step budget at
lifelong arrival rates. So each agent keeps the exact distances over an S x S window only:

- Placement: the window covers the agent's cell and extends towards its goal (the agent stands S/4 from the
  window's back edge along each axis, clamped to the map); a map no larger than S x S is covered whole.
- Search: breadth-first from the goal, restricted to a box = the agent-goal rectangle grown by a margin,
  clipped to the map (`box_bfs`); window cells outside the box stay UNKNOWN until needed.
- Exactness certificate: a path that leaves the box must step outside one of its open sides (sides on the
  map border are closed), so it is at least as long as the Manhattan detour through that side,
  `leave_bound(u)`. A cell whose in-box distance is at most that bound holds its true distance; any other
  cell of the window is stored as UNKNOWN. When the agent's cell or a free neighbour is UNKNOWN, the
  search is repeated with a 4x margin, up to the whole map (then UNKNOWN means unreachable).
- Refresh: a window is recomputed when the agent's goal changes, when the agent or a free neighbour leaves
  it, or when its map changed (a new episode); at a goal change the search covers only the new goal's box.

Values are stored as uint16 offsets from a per-agent base (the agent's distance minus 32767 when the
window was filled, floored at 0), so an agent's relative distances are exact wherever it can stand before
the window is refreshed; UNKNOWN (65535) marks cells that are obstacles, unreached, uncertified or beyond
the offsets' range.
Memory: E * N * S * S * 2 bytes (`side_for_budget` picks S from a byte budget).

Buffers (the `Windows` named tuple; E environments, N agents):
    values  (E, N, S, S) uint16  distance - base, UNKNOWN where not known
    origin  (E, N, 2) int32      top-left (row, col) of the window in the map
    base    (E, N) int64         distance = base + value
    goal    (E, N, 2) int32      the goal the window holds distances to, (-1, -1) when none
    whole   (E, N) bool          the last search covered the whole map (UNKNOWN = unreachable)
    near    (E, N, 5) int32      distances of the cells up, down, left, right of the agent and its own
                                 (UNREACHABLE for obstacles and unknown cells): what PIBT sorts by,
                                 gathered once per step into a compact array
    stats   (2,) int64           searches run, cells they visited (for benchmarks)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS, UNREACHABLE

UNKNOWN = 65535
_BASE_OFFSET = 32767
FIRST_MARGIN = 8
_MIN_SIDE = 8


class Windows(NamedTuple):
    """Per-agent distance windows (module docstring); kernels take it whole."""

    values: np.ndarray
    origin: np.ndarray
    base: np.ndarray
    goal: np.ndarray
    whole: np.ndarray
    near: np.ndarray
    stats: np.ndarray


def new_windows(num_envs: int, num_agents: int, side: int) -> Windows:
    """Empty windows of `side` x `side` cells (every agent's window is filled on first use)."""
    shape = (num_envs, num_agents)
    return Windows(
        values=np.full((*shape, side, side), UNKNOWN, dtype=np.uint16),
        origin=np.zeros((*shape, 2), dtype=np.int32),
        base=np.zeros(shape, dtype=np.int64),
        goal=np.full((*shape, 2), -1, dtype=np.int32),
        whole=np.zeros(shape, dtype=bool),
        near=np.full((*shape, 5), UNREACHABLE, dtype=np.int32),
        stats=np.zeros(2, dtype=np.int64),
    )


def side_for_budget(num_envs: int, num_agents: int, map_shape: tuple[int, int], budget: int) -> int:
    """The window side for `budget` bytes of windows: the whole map if it fits, else the largest square
    that does (at least 8 cells, so that an agent and its neighbours always fit with room to move)."""
    largest = max(map_shape)
    fitting = int(np.sqrt(budget / (2 * max(1, num_envs * num_agents))))
    return max(_MIN_SIDE, min(largest, fitting))


@njit(cache=True)
def _window_start(agent, goal, side, extent):
    """First row (or column) of a window of `side` cells along an axis of `extent` cells, placed so the
    agent stands side/4 from its back edge and the window reaches towards the goal."""
    if side >= extent:
        return 0
    back = side // 4
    start = agent - back if goal >= agent else agent + back - side + 1
    return min(max(start, 0), extent - side)


class FieldSearch(NamedTuple):
    """Scratch of one breadth-first search: label (H * W,) int64 holds (search id << 32) | distance, so a
    cell's distance is valid iff its label's high half is the current id and no search clears the map;
    rows, cols (H * W,) int32 the queue; current (1,) int64 the search id."""

    label: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    current: np.ndarray


def new_field_search(map_shape: tuple[int, int]) -> FieldSearch:
    """Search scratch for maps of up to `map_shape` cells (16 bytes per cell)."""
    cells = map_shape[0] * map_shape[1]
    return FieldSearch(
        label=np.zeros(cells, dtype=np.int64),
        rows=np.zeros(cells, dtype=np.int32),
        cols=np.zeros(cells, dtype=np.int32),
        current=np.zeros(1, dtype=np.int64),
    )


@njit(cache=True)
def searched_distance(search, cell):
    """The distance the last search found for flat `cell`, or -1 if it did not reach it."""
    label = search.label[cell]
    if (label >> 32) != search.current[0]:
        return -1
    return label & 0xFFFFFFFF


@njit(cache=True)
def box_bfs(
    obstacles,  # (H, W) uint8, 1 = obstacle
    goal_row,  # int
    goal_col,  # int
    row0,  # int, the box: rows row0..row1-1, columns col0..col1-1
    row1,  # int
    col0,  # int
    col1,  # int
    search,  # FieldSearch scratch, written under a new search id
):
    """Breadth-first distances from the goal over the free cells of the box; returns the cells visited.
    The queue holds rows and columns apart: dividing flat indices costs more than the rest of a visit."""
    width = obstacles.shape[1]
    label, rows, cols, current = search
    current[0] += 1
    tag = current[0] << 32
    label[goal_row * width + goal_col] = tag
    rows[0], cols[0] = goal_row, goal_col
    head, tail = 0, 1
    while head < tail:
        row, col = rows[head], cols[head]
        next_label = label[row * width + col] + 1
        head += 1
        for k in range(4):
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if r < row0 or r >= row1 or c < col0 or c >= col1 or obstacles[r, c] != 0:
                continue
            cell = r * width + c
            if label[cell] >= tag:
                continue
            label[cell] = next_label
            rows[tail], cols[tail] = r, c
            tail += 1
    return tail


@njit(cache=True)
def leave_bound(row, col, goal_row, goal_col, row0, row1, col0, col1, height, width):
    """A lower bound on the length of any path from (row, col) to the goal that leaves the box (both inside
    it): the Manhattan detour through the cheapest side that is not on the map border; UNREACHABLE when
    every side is on the border."""
    bound = UNREACHABLE
    across_cols = abs(goal_col - col)
    across_rows = abs(goal_row - row)
    if row0 > 0:
        bound = min(bound, (goal_row - row0 + 1) + (row - row0 + 1) + across_cols)
    if row1 < height:
        bound = min(bound, (row1 - goal_row) + (row1 - row) + across_cols)
    if col0 > 0:
        bound = min(bound, (goal_col - col0 + 1) + (col - col0 + 1) + across_rows)
    if col1 < width:
        bound = min(bound, (col1 - goal_col) + (col1 - col) + across_rows)
    return bound


@njit(cache=True)
def fill_window(
    obstacles,  # (H, W) uint8, the environment's map buffer (cells beyond its map are obstacles)
    height,  # int, the environment's map rows
    width,  # int, the environment's map columns
    goal_row,  # int
    goal_col,  # int
    row,  # int, the agent's cell
    col,  # int
    margin,  # int, how far the search box reaches beyond window and goal
    search,  # FieldSearch scratch
    values,  # (S, S) uint16, written
    origin,  # (2,) int32, written
):
    """Fill one agent's window with certified distances to its goal; returns (base, whole box, cells
    visited). The search box is the agent-goal rectangle grown by `margin` (clipped to the map): the
    window cells outside it stay UNKNOWN until the agent needs them."""
    side = values.shape[0]
    row_start = _window_start(row, goal_row, side, height)
    col_start = _window_start(col, goal_col, side, width)
    origin[0], origin[1] = row_start, col_start
    row0 = max(0, min(row, goal_row) - margin)
    row1 = min(height, max(row, goal_row) + 1 + margin)
    col0 = max(0, min(col, goal_col) - margin)
    col1 = min(width, max(col, goal_col) + 1 + margin)
    whole = row0 == 0 and col0 == 0 and row1 == height and col1 == width
    visited = box_bfs(obstacles, goal_row, goal_col, row0, row1, col0, col1, search)
    map_width = obstacles.shape[1]
    base = max(0, searched_distance(search, row * map_width + col) - _BASE_OFFSET)
    values[:, :] = UNKNOWN
    for map_row in range(max(row0, row_start), min(row1, row_start + side)):
        for map_col in range(max(col0, col_start), min(col1, col_start + side)):
            d = searched_distance(search, map_row * map_width + map_col)
            if d < 0:
                continue
            if not whole:
                bound = leave_bound(
                    map_row, map_col, goal_row, goal_col, row0, row1, col0, col1, height, width
                )
                if d > bound:
                    continue
            offset = d - base
            if 0 <= offset < UNKNOWN:  # a cell far closer to the goal than the agent is not stored
                values[map_row - row_start, map_col - col_start] = offset
    return base, whole, visited


@njit(cache=True)
def window_value(
    values,  # (S, S) uint16, one agent's window
    origin,  # (2,) int32, the window's top-left map cell
    base,  # int, distance = base + value
    row,  # int, a map cell
    col,  # int
    outside,  # int, returned for a cell outside the window
    unknown,  # int, returned where the window holds no value
):
    """The window's distance of (row, col) to the agent's goal, or `outside` / `unknown`."""
    r, c = row - origin[0], col - origin[1]
    side = values.shape[0]
    if r < 0 or c < 0 or r >= side or c >= side:
        return outside
    value = values[r, c]
    if value == UNKNOWN:
        return unknown
    return base + value


@njit(cache=True)
def window_distance(
    values,  # (S, S) uint16, one agent's window
    origin,  # (2,) int32
    base,  # int
    row,  # int
    col,  # int
):
    """The agent's certified distance from (row, col) to its goal; UNREACHABLE outside the window or where
    unknown."""
    return window_value(values, origin, base, row, col, UNREACHABLE, UNREACHABLE)


@njit(cache=True)
def gather_near(
    grid,  # (H, W) uint8
    height,  # int
    width,  # int
    values,  # (S, S) uint16, one agent's window
    origin,  # (2,) int32
    base,  # int
    row,  # int, the agent's cell
    col,  # int
    near,  # (5,) int32, written: distances up, down, left, right, here (UNREACHABLE: blocked or unknown)
):
    """Read the distances PIBT ranks the agent's moves by; returns whether every free one is known."""
    known = True
    for k in range(5):
        r, c = (row + ROW_STEPS[k], col + COL_STEPS[k]) if k < 4 else (row, col)
        near[k] = UNREACHABLE
        if 0 <= r < height and 0 <= c < width and grid[r, c] == 0:
            near[k] = window_distance(values, origin, base, r, c)
            known = known and near[k] != UNREACHABLE
    return known


@njit(cache=True)
def gather_all_near(
    positions,  # (E, N, 2) int32
    active,  # (E, N) bool
    obstacles,  # (E, H, W) uint8
    map_shapes,  # (E, 2) int32
    windows,  # Windows, near written for active agents
):
    """`gather_near` for every active agent (windows filled by another heuristic, e.g. guidance)."""
    for env in range(active.shape[0]):
        for agent in range(active.shape[1]):
            if active[env, agent]:
                gather_near(
                    obstacles[env], map_shapes[env, 0], map_shapes[env, 1], windows.values[env, agent],
                    windows.origin[env, agent], windows.base[env, agent], positions[env, agent, 0],
                    positions[env, agent, 1], windows.near[env, agent],
                )  # fmt: skip


@njit(cache=True)
def _inside(origin, side, row, col, height, width):
    """Whether the cell and its in-map neighbours all lie inside the window."""
    return (
        origin[0] <= max(row - 1, 0)
        and min(row + 1, height - 1) < origin[0] + side
        and origin[1] <= max(col - 1, 0)
        and min(col + 1, width - 1) < origin[1] + side
    )


@njit(cache=True)
def refill_window(
    windows, env, agent, obstacles, height, width, goal_row, goal_col, row, col, margin, search
):
    """`fill_window` (the same arguments after `agent`) into the window of agent `agent` of environment `env`,
    recorded in `windows` (Windows: base, whole, goal, search counts); returns whether the search covered the
    map."""
    base, whole, visited = fill_window(
        obstacles, height, width, goal_row, goal_col, row, col, margin, search,
        windows.values[env, agent], windows.origin[env, agent],
    )  # fmt: skip
    windows.base[env, agent], windows.whole[env, agent] = base, whole
    windows.goal[env, agent, 0], windows.goal[env, agent, 1] = goal_row, goal_col
    windows.stats[0] += 1
    windows.stats[1] += visited
    return whole


@njit(cache=True)
def ensure_windows(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    obstacles,  # (E, H, W) uint8
    map_shapes,  # (E, 2) int32, each environment's (H, W)
    windows,  # Windows, updated
    search,  # FieldSearch scratch over H * W cells
):
    """Refresh the window of every active agent whose goal changed, who left its window, or whose cell or
    a free neighbour has no certified distance (module docstring); `windows.stats` counts the searches."""
    num_envs, num_agents = active.shape
    side = windows.values.shape[2]
    for env in range(num_envs):
        height, width = map_shapes[env, 0], map_shapes[env, 1]
        grid = obstacles[env]
        for agent in range(num_agents):
            if not active[env, agent]:
                continue
            row, col = positions[env, agent, 0], positions[env, agent, 1]
            goal_row, goal_col = goals[env, agent, 0], goals[env, agent, 1]
            values = windows.values[env, agent]
            origin = windows.origin[env, agent]
            near = windows.near[env, agent]
            same_goal = windows.goal[env, agent, 0] == goal_row and windows.goal[env, agent, 1] == goal_col
            if same_goal and _inside(origin, side, row, col, height, width):
                base = windows.base[env, agent]
                known = gather_near(grid, height, width, values, origin, base, row, col, near)
                if known or windows.whole[env, agent]:
                    continue
            margin = FIRST_MARGIN
            while True:
                whole = refill_window(
                    windows, env, agent, grid, height, width, goal_row, goal_col, row, col, margin, search
                )
                base = windows.base[env, agent]
                if gather_near(grid, height, width, values, origin, base, row, col, near) or whole:
                    break
                margin *= 4


@njit(cache=True)
def forget_changed_maps(
    obstacles,  # (E, H, W) uint8, the maps now
    known_obstacles,  # (E, H, W) uint8, the maps the windows were computed on; updated
    goal,  # (E, N, 2) int32, Windows.goal: set to -1 for environments whose map changed
):
    """Invalidate every window of an environment whose obstacle map changed since the last call."""
    for env in range(obstacles.shape[0]):
        if not np.array_equal(obstacles[env], known_obstacles[env]):
            known_obstacles[env] = obstacles[env]
            goal[env] = -1
