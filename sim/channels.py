"""Extra observation channels beyond POGEMA's three, written into the env's (E, N, C, F, F) buffer.

`path` (SRMT's planned path: Sagirova et al., 2025, arXiv 2501.13200, and the planner wrapper of
github.com/Aloriosa/srmt): 1 on the cells of one shortest path from the agent's cell
to its goal (4-connected, static map, other agents ignored), drawn from the agent's own cell (the window
centre) up to the first path cell outside the window; 0 elsewhere. Among equally short paths, each step takes
the first move in action order up, down, left, right that lowers the distance (deterministic). If the goal is
unreachable the channel is all 0; an agent on its goal has only its centre cell set. Obstacles are *not*
folded in: SRMT's single obstacles-and-path channel (-1 obstacle, +1 path) is `path - obstacles`.

The path's distances come from full-map breadth-first fields (sim.distance's cache) when the cache keeps the
field of every cell of the batch (small maps: each field is computed once per map). Otherwise, where fields
would be recomputed thousands of times a step (10,000 agents on 512x512), they come from one S x S window of
exact goal distances per agent (sim.planners.fields: a breadth-first search from the goal over a box around
agent and goal, every stored value certified exact). A window is filled anew only when the agent's goal or
map changes, or when the drawing needs a distance the window cannot vouch for: a cell outside the window, or
a free cell without a value, unless the search covered the whole map (a value then missing within the
offsets' range means unreachable; the agent's own cell counts as unreachable only in a window filled with
the agent on it). Each refill widens the search box 4x up to the whole map, and a window of side >= 4
(radius + 1) filled at the agent's cell holds every cell a drawing reads, so the drawing completes. The
values are the full breadth-first field's: both sources draw the same channel, bit for bit. Per step the
windows cost O(agents x path cells in the window) plus the refills' searches.

`other_goals` (SRMT's anonymous targets): 1 at every cell inside the window that is the current goal of
another active agent; the agent's own goal is not marked by its own entry (a cell that is also another
active agent's goal is still 1). Inactive agents' goals are not shown.

Window cell (a, b) of an agent at (row, col) shows map cell (row - r + a, col - r + b); off-map cells are 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.actions import COL_STEPS, ROW_STEPS
from sim.distance import UNREACHABLE, DistanceCache, ensure_field
from sim.planners.fields import (
    FIRST_MARGIN,
    UNKNOWN,
    Windows,
    forget_changed_maps,
    new_field_search,
    new_windows,
    refill_window,
    side_for_budget,
    window_value,
)

PATH_WINDOW_BUDGET = 64 * 2**20
"""Bytes of per-agent distance windows the path channel keeps by default."""
OUTSIDE, NO_VALUE = -1, -2


@njit(cache=True)
def draw_path_in_field(
    field,  # (H, W) int32, distance field of the agent's goal
    row,  # int, the agent's cell
    col,  # int
    plane,  # (F, F) float, written: the path channel of one agent
):
    """Draw one shortest path from (row, col) downhill in `field` until it leaves the window."""
    radius = plane.shape[0] // 2
    height, width = field.shape
    plane[:, :] = 0
    if field[row, col] == UNREACHABLE:
        return
    plane[radius, radius] = 1
    top, left = row - radius, col - radius
    while field[row, col] > 0:
        downhill = field[row, col] - 1
        for k in range(4):  # a reachable cell off the goal always has a downhill neighbour (BFS)
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if 0 <= r < height and 0 <= c < width and field[r, c] == downhill:
                break
        row, col = r, c
        if not (0 <= row - top < plane.shape[0] and 0 <= col - left < plane.shape[1]):
            return
        plane[row - top, col - left] = 1


@njit(cache=True)
def draw_path_in_window(
    grid,  # (H, W) uint8, the environment's map buffer (1 = obstacle)
    values,  # (S, S) uint16, the agent's distance window to its goal
    origin,  # (2,) int32
    base,  # int
    whole,  # bool, the window's search covered the whole map
    filled_here,  # bool, the window was filled with the agent on (row, col)
    row,  # int, the agent's cell
    col,  # int
    plane,  # (F, F) float, written: the path channel of one agent
):
    """Draw one shortest path from (row, col) downhill until it leaves the observation window; returns False
    (plane partly written) when that needs a distance the window cannot vouch for (module docstring)."""
    radius = plane.shape[0] // 2
    height, width = grid.shape
    plane[:, :] = 0
    distance = window_value(values, origin, base, row, col, OUTSIDE, NO_VALUE)
    if distance == OUTSIDE:
        return False
    if distance == NO_VALUE:
        return whole and filled_here  # unreachable: the whole-map search from the goal missed this cell
    plane[radius, radius] = 1
    top, left = row - radius, col - radius
    while distance > 0:
        downhill = distance - 1
        # a missing value is certainly not `downhill` only if the whole-map search would have stored it
        settled = whole and 0 <= downhill - base < UNKNOWN
        for k in range(4):  # a reachable cell off the goal always has a downhill neighbour (BFS)
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if not (0 <= r < height and 0 <= c < width) or grid[r, c] != 0:
                continue
            neighbour = window_value(values, origin, base, r, c, OUTSIDE, NO_VALUE)
            if neighbour == OUTSIDE or (neighbour == NO_VALUE and not settled):
                return False
            if neighbour == downhill:
                break
        row, col, distance = r, c, downhill
        if not (0 <= row - top < plane.shape[0] and 0 <= col - left < plane.shape[1]):
            return True
        plane[row - top, col - left] = 1
    return True


@njit(cache=True)
def count_goals(
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    counts,  # (E, H, W) int32, written: number of active agents whose goal is the cell
):
    """Count, per cell, the active agents heading there."""
    counts[:] = 0
    for env in range(goals.shape[0]):
        for agent in range(goals.shape[1]):
            if active[env, agent]:
                counts[env, goals[env, agent, 0], goals[env, agent, 1]] += 1


@njit(cache=True)
def draw_other_goals(
    goal_counts,  # (H, W) int32, from count_goals, one environment
    row,  # int, the agent's cell
    col,  # int
    own_goal_row,  # int
    own_goal_col,  # int
    own_goal_counted,  # bool, the agent is active, so its own goal is in goal_counts
    plane,  # (F, F) float, written: the other_goals channel of one agent
):
    """Mark the cells of the window that are goals of other active agents."""
    radius = plane.shape[0] // 2
    height, width = goal_counts.shape
    for a in range(plane.shape[0]):
        for b in range(plane.shape[1]):
            r, c = row - radius + a, col - radius + b
            others = 0
            if 0 <= r < height and 0 <= c < width:
                own = own_goal_counted and r == own_goal_row and c == own_goal_col
                others = goal_counts[r, c] - (1 if own else 0)
            plane[a, b] = 1 if others > 0 else 0


@njit(cache=True)
def write_path_channel_from_fields(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    obstacles,  # (E, H, W) uint8
    cache,  # sim.distance.CacheArrays, updated
    channel,  # int, index of the path channel in obs
    obs,  # (E, N, C, F, F) float, channel `channel` written
):
    """Write every agent's path channel from the cached distance field of its goal."""
    for env in range(obs.shape[0]):
        for agent in range(obs.shape[1]):
            slot = ensure_field(env, goals[env, agent, 0], goals[env, agent, 1], obstacles, cache)
            row, col = positions[env, agent, 0], positions[env, agent, 1]
            draw_path_in_field(cache.fields[slot], row, col, obs[env, agent, channel])


@njit(cache=True)
def write_path_channel_from_windows(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    obstacles,  # (E, H, W) uint8
    windows,  # sim.planners.fields.Windows, updated
    filled_at,  # (E, N, 2) int32, the agent's cell when its window was filled; updated
    search,  # sim.planners.fields.FieldSearch scratch over H * W cells
    channel,  # int, index of the path channel in obs
    obs,  # (E, N, C, F, F) float, channel `channel` written
):
    """Write every agent's path channel from its distance window, filling the window anew (searches with a
    growing margin) when its goal changed or the drawing needs a distance it lacks; `windows.stats` counts
    the searches."""
    height, width = obstacles.shape[1], obstacles.shape[2]
    for env in range(obs.shape[0]):
        grid = obstacles[env]
        for agent in range(obs.shape[1]):
            row, col = positions[env, agent, 0], positions[env, agent, 1]
            goal_row, goal_col = goals[env, agent, 0], goals[env, agent, 1]
            values, origin = windows.values[env, agent], windows.origin[env, agent]
            plane = obs[env, agent, channel]
            if grid[row, col] != 0 or grid[goal_row, goal_col] != 0:  # a full field has no path there either
                plane[:, :] = 0
                continue
            drawn = False
            if windows.goal[env, agent, 0] == goal_row and windows.goal[env, agent, 1] == goal_col:
                here = filled_at[env, agent, 0] == row and filled_at[env, agent, 1] == col
                base, whole = windows.base[env, agent], windows.whole[env, agent]
                drawn = draw_path_in_window(grid, values, origin, base, whole, here, row, col, plane)
            margin = FIRST_MARGIN
            while not drawn:  # each refill widens the search box 4x, up to the whole map
                whole = refill_window(
                    windows, env, agent, grid, height, width, goal_row, goal_col, row, col, margin, search
                )
                filled_at[env, agent, 0], filled_at[env, agent, 1] = row, col
                base = windows.base[env, agent]
                drawn = draw_path_in_window(grid, values, origin, base, whole, True, row, col, plane)
                margin *= 4


@njit(cache=True)
def write_other_goals_channel(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    goal_counts,  # (E, H, W) int32, from count_goals
    channel,  # int, index of the other_goals channel in obs
    obs,  # (E, N, C, F, F) float, channel `channel` written
):
    """Write every agent's other_goals channel."""
    for env in range(obs.shape[0]):
        for agent in range(obs.shape[1]):
            draw_other_goals(
                goal_counts[env], positions[env, agent, 0], positions[env, agent, 1],
                goals[env, agent, 0], goals[env, agent, 1], active[env, agent], obs[env, agent, channel],
            )  # fmt: skip


class ExtraChannels:
    """Writes the `path` and `other_goals` channels of an observation spec into the env's buffer.

    `channels` is the spec's channel tuple (its order is the buffer's channel order); channels other than
    these two are left to the env. `distances` is shared with other users of the env's distance fields; the
    path channel reads its fields when it can keep the field of every cell of the batch (`uses_windows` is
    False), else per-agent windows of `window_budget` bytes in all (each side at least 4 (radius + 1)).
    """

    def __init__(
        self, channels: tuple[str, ...], distances: DistanceCache, window_budget: int = PATH_WINDOW_BUDGET
    ) -> None:
        self.path_channel = channels.index("path") if "path" in channels else -1
        self.other_goals_channel = channels.index("other_goals") if "other_goals" in channels else -1
        self.distances = distances
        self.obstacles = distances.obstacles
        self.uses_windows = distances.capacity < self.obstacles.size
        self.window_budget = window_budget
        self.windows: Windows | None = None
        self._goal_counts = np.zeros(self.obstacles.shape, dtype=np.int32)

    def _allocate(self, num_agents: int, radius: int) -> None:
        """Windows for `num_agents` agents per environment, and the scratch of their searches."""
        num_envs, height, width = self.obstacles.shape
        side = max(
            side_for_budget(num_envs, num_agents, (height, width), self.window_budget),
            min(max(height, width), 4 * (radius + 1)),  # a fresh window holds the cells a drawing reads
        )
        self.windows = new_windows(num_envs, num_agents, side)
        self._filled_at = np.zeros((num_envs, num_agents, 2), dtype=np.int32)
        self._known_obstacles = np.full_like(self.obstacles, 2)  # 2 never equals a real map
        self._search = new_field_search((height, width))
        self._radius = radius

    def _write_path(self, obs: np.ndarray, positions: np.ndarray, goals: np.ndarray) -> None:
        """The path channel, from the cached full fields or from the agents' windows (the same values)."""
        if not self.uses_windows:
            self.distances.refresh()
            write_path_channel_from_fields(
                positions, goals, self.obstacles, self.distances.arrays, self.path_channel, obs
            )
            return
        radius = obs.shape[-1] // 2
        if self.windows is None or self.windows.goal.shape[1] != obs.shape[1] or self._radius != radius:
            self._allocate(obs.shape[1], radius)
        windows = self.windows
        forget_changed_maps(self.obstacles, self._known_obstacles, windows.goal)
        write_path_channel_from_windows(
            positions, goals, self.obstacles, windows, self._filled_at, self._search, self.path_channel, obs
        )

    def write(self, obs: np.ndarray, positions: np.ndarray, goals: np.ndarray, active: np.ndarray) -> None:
        """Fill the extra channels of `obs` (E, N, C, F, F) for the current state."""
        if self.path_channel >= 0:
            self._write_path(obs, positions, goals)
        if self.other_goals_channel >= 0:
            count_goals(goals, active, self._goal_counts)
            write_other_goals_channel(
                positions, goals, active, self._goal_counts, self.other_goals_channel, obs
            )
