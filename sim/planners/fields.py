"""Exact goal distances for the planners, per agent, over a window of the map around the agent.

PIBT reads, at every step, the distance to its goal of each agent's cell and of its free neighbours, and
it needs the fields of all agents at once (one agent's inheritance chain visits many others). A full
field per live goal does not fit at scale (10,000 goals on 512x512 would be 10 GiB of int32, and
`sim.distance.DistanceCache` recomputes a field whenever more goals are live than its pool holds), and a
full-map breadth-first search per goal change (~0.8 ms at 512x512) would cost more than the step budget at
lifelong arrival rates. So each agent keeps the exact distances over an S x S window only:

- Placement: the window covers the agent's cell and extends towards its goal (the agent stands S/4 from the
  window's back edge along each axis, clamped to the map); a map no larger than S x S is covered whole.
- Search: breadth-first from the goal, restricted to a box = the bounding box of window and goal grown by a
  margin, clipped to the map (`box_bfs`). On open maps that is about the agent-goal rectangle.
- Exactness certificate: a path that leaves the box must step outside one of its open sides (sides on the
  map border are closed), so it is at least as long as the Manhattan detour through that side,
  `leave_bound(u)`. A cell whose in-box distance is at most that bound holds its true distance; any other
  cell of the window is stored as UNKNOWN. When the agent's cell or a free neighbour is UNKNOWN, the
  search is repeated with a 4x margin, up to the whole map (then UNKNOWN means unreachable).
- Refresh: a window is recomputed when the agent's goal changes, when the agent or a free neighbour leaves
  it, or when its map changed (a new episode); at a goal change the search covers only the new goal's box.

Values are stored as uint16 offsets from a per-agent base (the agent's distance minus 32767 when the
window was filled, floored at 0), so an agent's relative distances are exact wherever it can stand before
the window is refreshed; UNKNOWN (65535) marks cells that are obstacles, unreached or uncertified.
Memory: E * N * S * S * 2 bytes (`side_for_budget` picks S from a byte budget).

Buffers (the `Windows` named tuple; E environments, N agents):
    values  (E, N, S, S) uint16  distance - base, UNKNOWN where not known
    origin  (E, N, 2) int32      top-left (row, col) of the window in the map
    base    (E, N) int64         distance = base + value
    goal    (E, N, 2) int32      the goal the window holds distances to, (-1, -1) when none
    whole   (E, N) bool          the last search covered the whole map (UNKNOWN = unreachable)
    stats   (2,) int64           searches run, cells they visited (for benchmarks)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS, UNREACHABLE
from sim.paths import Search, new_search

UNKNOWN = 65535
_BASE_OFFSET = 32767
_FIRST_MARGIN = 8
_MIN_SIDE = 8


class Windows(NamedTuple):
    """Per-agent distance windows (module docstring); kernels take it whole."""

    values: np.ndarray
    origin: np.ndarray
    base: np.ndarray
    goal: np.ndarray
    whole: np.ndarray
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


@njit(cache=True)
def box_bfs(
    obstacles,  # (H, W) uint8, 1 = obstacle
    goal_row,  # int
    goal_col,  # int
    row0,  # int, the box: rows row0..row1-1, columns col0..col1-1
    row1,  # int
    col0,  # int
    col1,  # int
    search,  # sim.paths.Search scratch, written under a new stamp id
):
    """Breadth-first distances from the goal over the free cells of the box; returns the cells visited."""
    width = obstacles.shape[1]
    distance, stamp, stamp_id, queue = search
    stamp_id[0] += 1
    goal = goal_row * width + goal_col
    stamp[goal] = stamp_id[0]
    distance[goal] = 0
    queue[0] = goal
    head, tail = 0, 1
    while head < tail:
        here = queue[head]
        head += 1
        here_row, here_col = here // width, here % width
        next_distance = distance[here] + 1
        for k in range(4):
            r, c = here_row + ROW_STEPS[k], here_col + COL_STEPS[k]
            if r < row0 or r >= row1 or c < col0 or c >= col1 or obstacles[r, c] != 0:
                continue
            cell = r * width + c
            if stamp[cell] == stamp_id[0]:
                continue
            stamp[cell] = stamp_id[0]
            distance[cell] = next_distance
            queue[tail] = cell
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
    search,  # sim.paths.Search scratch
    values,  # (S, S) uint16, written
    origin,  # (2,) int32, written
):
    """Fill one agent's window with certified distances to its goal; returns (base, whole box, cells
    visited)."""
    side = values.shape[0]
    row_start = _window_start(row, goal_row, side, height)
    col_start = _window_start(col, goal_col, side, width)
    origin[0], origin[1] = row_start, col_start
    row0 = max(0, min(row_start, goal_row) - margin)
    row1 = min(height, max(row_start + side, goal_row + 1) + margin)
    col0 = max(0, min(col_start, goal_col) - margin)
    col1 = min(width, max(col_start + side, goal_col + 1) + margin)
    whole = row0 == 0 and col0 == 0 and row1 == height and col1 == width
    visited = box_bfs(obstacles, goal_row, goal_col, row0, row1, col0, col1, search)
    distance, stamp, stamp_id, _ = search
    map_width = obstacles.shape[1]
    here = row * map_width + col
    base = 0
    if stamp[here] == stamp_id[0]:
        base = max(0, distance[here] - _BASE_OFFSET)
    values[:, :] = UNKNOWN
    for r in range(row_start, min(row_start + side, height)):
        for c in range(col_start, min(col_start + side, width)):
            cell = r * map_width + c
            if stamp[cell] != stamp_id[0]:
                continue
            d = distance[cell]
            if d > leave_bound(r, c, goal_row, goal_col, row0, row1, col0, col1, height, width):
                continue
            offset = d - base
            if offset < UNKNOWN:
                values[r - row_start, c - col_start] = offset
    return base, whole, visited


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
    r, c = row - origin[0], col - origin[1]
    side = values.shape[0]
    if r < 0 or c < 0 or r >= side or c >= side:
        return UNREACHABLE
    value = values[r, c]
    if value == UNKNOWN:
        return UNREACHABLE
    return base + value


@njit(cache=True)
def _neighbourhood_known(obstacles, height, width, values, origin, row, col):
    """Whether the cell and each of its free neighbours lie in the window with a known distance."""
    if window_distance(values, origin, 0, row, col) == UNREACHABLE:
        return False
    for k in range(4):
        r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
        free = 0 <= r < height and 0 <= c < width and obstacles[r, c] == 0
        if free and window_distance(values, origin, 0, r, c) == UNREACHABLE:
            return False
    return True


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
def ensure_windows(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    obstacles,  # (E, H, W) uint8
    map_shapes,  # (E, 2) int32, each environment's (H, W)
    windows,  # Windows, updated
    search,  # sim.paths.Search scratch over H * W cells
):
    """Refresh the window of every active agent whose goal changed, who left its window, or whose cell or
    a free neighbour has no certified distance (module docstring); returns the searches run."""
    runs = 0
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
            same_goal = windows.goal[env, agent, 0] == goal_row and windows.goal[env, agent, 1] == goal_col
            if (
                same_goal
                and _inside(origin, side, row, col, height, width)
                and (
                    windows.whole[env, agent]
                    or _neighbourhood_known(grid, height, width, values, origin, row, col)
                )
            ):
                continue
            margin = _FIRST_MARGIN
            while True:
                base, whole, visited = fill_window(
                    grid, height, width, goal_row, goal_col, row, col, margin, search, values, origin
                )
                runs += 1
                windows.stats[1] += visited
                if whole or _neighbourhood_known(grid, height, width, values, origin, row, col):
                    break
                margin *= 4
            windows.base[env, agent] = base
            windows.whole[env, agent] = whole
            windows.goal[env, agent, 0], windows.goal[env, agent, 1] = goal_row, goal_col
    windows.stats[0] += runs
    return runs


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


def new_field_search(map_shape: tuple[int, int]) -> Search:
    """Search scratch for windows over maps of `map_shape` (16 bytes per cell)."""
    return new_search(map_shape[0] * map_shape[1])
