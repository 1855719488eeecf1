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

`detour` (a congestion-aware planned path, after Follower's cost map: Skrynnik et al., AAAI 2024,
github.com/AIRI-Institute/learn-to-follow): 1 on the cells of the cheapest route from the agent's cell to its
goal where entering a cell another active agent occupies now costs 1 + DETOUR_PENALTY and any other free cell
costs 1. Only the window is seen: outside it every cell costs 1, so a route that leaves the window at a
neighbour m costs 1 + (m's shortest-path distance) from the window cell it leaves (a route that leaves and
comes back is priced as if the window were free; Follower instead keeps its own counts of where it saw agents
since its goal was set, which needs per-agent memory across steps). Drawn from the centre like `path`: each
step the first move in action order that stays on a cheapest route, until the goal or the first cell outside
the window. With no other agent in the window it is exactly the `path` channel; an agent whose goal is
unreachable has it all 0. Its distances come from the same source as `path`'s (full fields or the agents'
windows, whose fill also covers the ring of cells around the observation window); from a window it reads
only the cells a route from the agent can use (the window's free cells connected to the agent's cell inside
it, and the ring cells they step out to), all reachable when the agent is, so a window filled at the
agent's cell vouches for them. Per agent and step it costs a Dijkstra over the F x F window, O(F^2 log F).

`other_goals` (SRMT's anonymous targets): 1 at every cell inside the window that is the current goal of
another active agent; the agent's own goal is not marked by its own entry (a cell that is also another
active agent's goal is still 1). Inactive agents' goals are not shown.

Window cell (a, b) of an agent at (row, col) shows map cell (row - r + a, col - r + b); off-map cells are 0.
"""

from __future__ import annotations

from typing import NamedTuple

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
DETOUR_PENALTY = 3
"""The `detour` channel's extra cost of entering a cell another agent occupies: above 2, the length a
detour around one agent adds on open ground, so such a detour is preferred to going through."""


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


class DetourScratch(NamedTuple):
    """Scratch of the `detour` channel for F x F windows, reused agent after agent; kernels take it whole."""

    distances: np.ndarray  # (F + 2, F + 2) int64: the window and the ring around it, UNREACHABLE if unusable
    costs: np.ndarray  # (F, F) int64: cheapest cost to the goal from each window cell
    settled: np.ndarray  # (F, F) bool
    stack: np.ndarray  # ((F + 2)^2, 2) int64
    queue: np.ndarray  # (5 F^2, 2) int64


def new_detour_scratch(size: int) -> DetourScratch:
    """Scratch for windows of `size` x `size` cells."""
    return DetourScratch(
        distances=np.empty((size + 2, size + 2), dtype=np.int64),
        costs=np.empty((size, size), dtype=np.int64),
        settled=np.empty((size, size), dtype=np.bool_),
        stack=np.empty(((size + 2) ** 2, 2), dtype=np.int64),
        queue=np.empty((5 * size * size, 2), dtype=np.int64),
    )


@njit(cache=True)
def patch_from_field(
    field,  # (H, W) int32, distance field of the agent's goal
    row,  # int, the agent's cell
    col,  # int
    distances,  # (F + 2, F + 2) int64, written: the field over the window and the ring around it
):
    """Copy the field's distances around the agent, UNREACHABLE off the map."""
    height, width = field.shape
    top, left = row - distances.shape[0] // 2, col - distances.shape[1] // 2
    for p in range(distances.shape[0]):
        for q in range(distances.shape[1]):
            r, c = top + p, left + q
            distances[p, q] = field[r, c] if 0 <= r < height and 0 <= c < width else UNREACHABLE


@njit(cache=True)
def patch_from_window(
    grid,  # (H, W) uint8, the environment's map buffer (1 = obstacle)
    values,  # (S, S) uint16, the agent's distance window to its goal
    origin,  # (2,) int32
    base,  # int
    row,  # int, the agent's cell, which can reach the goal
    col,  # int
    distances,  # (F + 2, F + 2) int64, written
    stack,  # ((F + 2)^2, 2) int64 scratch
):
    """The distances a route from the agent can use: the free cells of the window connected to the agent's
    cell inside it, and the cells of the ring they step out to; UNREACHABLE elsewhere (a cheapest route
    never uses them). Returns False when the window cannot vouch for one of them: every such cell is
    reachable as the agent is, so a window filled at the agent's cell over the whole map holds them all."""
    height, width = grid.shape
    size = distances.shape[0]
    top, left = row - size // 2, col - size // 2
    distances[:, :] = UNREACHABLE
    distances[size // 2, size // 2] = -1  # queued
    stack[0, 0], stack[0, 1] = size // 2, size // 2
    queued = 1
    while queued > 0:
        queued -= 1
        p, q = stack[queued, 0], stack[queued, 1]
        distance = window_value(values, origin, base, top + p, left + q, OUTSIDE, NO_VALUE)
        if distance < 0:
            return False
        distances[p, q] = distance
        ring = p == 0 or q == 0 or p == size - 1 or q == size - 1
        if ring:
            continue  # a route leaves the window here; it does not walk on outside
        for k in range(4):
            i, j = p + ROW_STEPS[k], q + COL_STEPS[k]
            r, c = top + i, left + j
            if 0 <= r < height and 0 <= c < width and grid[r, c] == 0 and distances[i, j] == UNREACHABLE:
                distances[i, j] = -1
                stack[queued, 0], stack[queued, 1] = i, j
                queued += 1
    return True


@njit(cache=True)
def route_costs(
    distances,  # (F + 2, F + 2) int64, from patch_from_field or patch_from_window
    occupancy,  # (H, W) int32, active agents per cell, the agent itself included
    row,  # int, the agent's cell
    col,  # int
    costs,  # (F, F) int64, written: each window cell's cheapest cost to the goal, UNREACHABLE if none
    settled,  # (F, F) bool scratch
    queue,  # (5 F^2, 2) int64 scratch: the Dijkstra's heap (each cell enters once, and once per improvement)
):
    """The `detour` channel's costs to go (module docstring) by Dijkstra over the window's cells: the goal
    costs 0, leaving the window at neighbour m costs 1 + its distance, entering a window cell 1, or
    1 + DETOUR_PENALTY where another agent stands. O(F^2 log F) for an F x F window."""
    size = costs.shape[0]
    top, left = row - size // 2, col - size // 2
    for a in range(size):
        for b in range(size):
            here = distances[a + 1, b + 1]
            best = UNREACHABLE
            if here != UNREACHABLE:
                if here == 0:
                    best = 0
                for k in range(4):  # leaving the window here: the rest of the way unseen, so unpriced
                    i, j = a + ROW_STEPS[k], b + COL_STEPS[k]
                    outside = not (0 <= i < size and 0 <= j < size)
                    if outside and distances[i + 1, j + 1] != UNREACHABLE:
                        best = min(best, 1 + distances[i + 1, j + 1])
            costs[a, b] = best
            settled[a, b] = False
    queued = 0
    for a in range(size):
        for b in range(size):
            if costs[a, b] != UNREACHABLE:
                queued = _push(queue, queued, costs[a, b], a * size + b)
    while queued > 0:
        lowest, cell = queue[0, 0], queue[0, 1]
        queued = _pop(queue, queued)
        a, b = cell // size, cell % size
        if settled[a, b]:
            continue
        settled[a, b] = True
        enter = lowest + _entry_cost(occupancy, row, col, top + a, left + b)  # from a neighbour into (a, b)
        for k in range(4):
            i, j = a + ROW_STEPS[k], b + COL_STEPS[k]
            inside = 0 <= i < size and 0 <= j < size
            if inside and distances[i + 1, j + 1] != UNREACHABLE and enter < costs[i, j]:
                costs[i, j] = enter
                queued = _push(queue, queued, enter, i * size + j)


@njit(cache=True)
def _push(
    queue,  # (Q, 2) int64, a binary min-heap of (key, item) in its first `queued` rows
    queued,  # int
    key,  # int
    item,  # int
):
    """Add (key, item) to the heap; returns its new length."""
    child = queued
    while child > 0:
        parent = (child - 1) // 2
        if queue[parent, 0] <= key:
            break
        queue[child, 0], queue[child, 1] = queue[parent, 0], queue[parent, 1]
        child = parent
    queue[child, 0], queue[child, 1] = key, item
    return queued + 1


@njit(cache=True)
def _pop(
    queue,  # (Q, 2) int64, a binary min-heap of (key, item) in its first `queued` rows
    queued,  # int, > 0
):
    """Remove the heap's top row (the caller read it); returns the new length."""
    queued -= 1
    key, item = queue[queued, 0], queue[queued, 1]
    parent = 0
    while True:
        child = 2 * parent + 1
        if child >= queued:
            break
        if child + 1 < queued and queue[child + 1, 0] < queue[child, 0]:
            child += 1
        if key <= queue[child, 0]:
            break
        queue[parent, 0], queue[parent, 1] = queue[child, 0], queue[child, 1]
        parent = child
    queue[parent, 0], queue[parent, 1] = key, item
    return queued


@njit(cache=True)
def _entry_cost(occupancy, row, col, r, c):
    """1, or 1 + DETOUR_PENALTY when an agent other than the one at (row, col) stands on (r, c)."""
    others = occupancy[r, c] - (1 if (r == row and c == col) else 0)
    return 1 + (DETOUR_PENALTY if others > 0 else 0)


@njit(cache=True)
def draw_detour(
    occupancy,  # (H, W) int32, active agents per cell, the agent itself included
    row,  # int, the agent's cell
    col,  # int
    scratch,  # DetourScratch, its distances from patch_from_field or patch_from_window
    plane,  # (F, F) float, written: the detour channel of one agent
):
    """Draw one cheapest route of the `detour` channel from the window centre (module docstring)."""
    size = plane.shape[0]
    plane[:, :] = 0
    distances, costs = scratch.distances, scratch.costs
    route_costs(distances, occupancy, row, col, costs, scratch.settled, scratch.queue)
    a = b = size // 2
    if costs[a, b] == UNREACHABLE:
        return
    plane[a, b] = 1
    top, left = row - size // 2, col - size // 2
    while costs[a, b] > 0:
        for k in range(4):  # a cell with a finite cost has a move that stays on a cheapest route
            i, j = a + ROW_STEPS[k], b + COL_STEPS[k]
            if distances[i + 1, j + 1] == UNREACHABLE:
                continue
            if not (0 <= i < size and 0 <= j < size):
                if 1 + distances[i + 1, j + 1] == costs[a, b]:
                    return  # the route leaves the window here
                continue
            if _entry_cost(occupancy, row, col, top + i, left + j) + costs[i, j] == costs[a, b]:
                break
        a, b = i, j
        plane[a, b] = 1


@njit(cache=True)
def count_active_cells(
    cells,  # (E, N, 2) int32, one cell per agent: positions (occupancy) or goals
    active,  # (E, N) bool
    counts,  # (E, H, W) int32, written: number of active agents whose cell it is
):
    """Count, per cell, the active agents whose given cell it is."""
    counts[:] = 0
    for env in range(cells.shape[0]):
        for agent in range(cells.shape[1]):
            if active[env, agent]:
                counts[env, cells[env, agent, 0], cells[env, agent, 1]] += 1


@njit(cache=True)
def draw_other_goals(
    goal_counts,  # (H, W) int32, from count_active_cells over goals, one environment
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
def write_route_channels_from_fields(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    obstacles,  # (E, H, W) uint8
    occupancy,  # (E, H, W) int32, from count_active_cells over positions (read only with a detour channel)
    cache,  # sim.distance.CacheArrays, updated
    scratch,  # DetourScratch
    path_channel,  # int, index of the path channel in obs, -1 if absent
    detour_channel,  # int, index of the detour channel in obs, -1 if absent
    obs,  # (E, N, C, F, F) float, the two channels written
):
    """Write every agent's path and detour channels from the cached distance field of its goal."""
    for env in range(obs.shape[0]):
        for agent in range(obs.shape[1]):
            slot = ensure_field(env, goals[env, agent, 0], goals[env, agent, 1], obstacles, cache)
            row, col = positions[env, agent, 0], positions[env, agent, 1]
            if path_channel >= 0:
                draw_path_in_field(cache.fields[slot], row, col, obs[env, agent, path_channel])
            if detour_channel >= 0:
                patch_from_field(cache.fields[slot], row, col, scratch.distances)
                draw_detour(occupancy[env], row, col, scratch, obs[env, agent, detour_channel])


@njit(cache=True)
def _draw_routes_in_window(
    grid, values, origin, base, whole, filled_here, row, col, occupancy, scratch, path_plane, detour_plane
):
    """Both channels from one agent's window (the arguments of draw_path_in_window and patch_from_window;
    a plane of size 0 is a channel not asked for); False when the window cannot vouch for a distance."""
    own = window_value(values, origin, base, row, col, OUTSIDE, NO_VALUE)
    if own == OUTSIDE or (own == NO_VALUE and not (whole and filled_here)):
        return False
    if path_plane.size and not draw_path_in_window(
        grid, values, origin, base, whole, filled_here, row, col, path_plane
    ):
        return False
    if detour_plane.size:
        detour_plane[:, :] = 0
        if own == NO_VALUE:
            return True  # unreachable: the whole-map search from the goal missed the agent's cell
        if not patch_from_window(grid, values, origin, base, row, col, scratch.distances, scratch.stack):
            return False
        draw_detour(occupancy, row, col, scratch, detour_plane)
    return True


@njit(cache=True)
def write_route_channels_from_windows(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    obstacles,  # (E, H, W) uint8
    occupancy,  # (E, H, W) int32, from count_active_cells over positions (read only with a detour channel)
    windows,  # sim.planners.fields.Windows, updated
    filled_at,  # (E, N, 2) int32, the agent's cell when its window was filled; updated
    search,  # sim.planners.fields.FieldSearch scratch over H * W cells
    scratch,  # DetourScratch
    path_channel,  # int, index of the path channel in obs, -1 if absent
    detour_channel,  # int, index of the detour channel in obs, -1 if absent
    obs,  # (E, N, C, F, F) float, the two channels written
):
    """Write every agent's path and detour channels from its distance window, filling the window anew
    (searches with a growing margin) when its goal changed or a drawing needs a distance it lacks;
    `windows.stats` counts the searches."""
    height, width = obstacles.shape[1], obstacles.shape[2]
    absent = np.zeros((0, 0), dtype=obs.dtype)
    for env in range(obs.shape[0]):
        grid = obstacles[env]
        for agent in range(obs.shape[1]):
            row, col = positions[env, agent, 0], positions[env, agent, 1]
            goal_row, goal_col = goals[env, agent, 0], goals[env, agent, 1]
            values, origin = windows.values[env, agent], windows.origin[env, agent]
            path_plane = obs[env, agent, path_channel] if path_channel >= 0 else absent
            detour_plane = obs[env, agent, detour_channel] if detour_channel >= 0 else absent
            if grid[row, col] != 0 or grid[goal_row, goal_col] != 0:  # a full field has no path there either
                path_plane[:, :] = 0
                detour_plane[:, :] = 0
                continue
            drawn = False
            if windows.goal[env, agent, 0] == goal_row and windows.goal[env, agent, 1] == goal_col:
                here = filled_at[env, agent, 0] == row and filled_at[env, agent, 1] == col
                base, whole = windows.base[env, agent], windows.whole[env, agent]
                drawn = _draw_routes_in_window(
                    grid, values, origin, base, whole, here, row, col, occupancy[env], scratch, path_plane,
                    detour_plane,
                )  # fmt: skip
            margin = FIRST_MARGIN
            while not drawn:  # each refill widens the search box 4x, up to the whole map
                whole = refill_window(
                    windows, env, agent, grid, height, width, goal_row, goal_col, row, col, margin, search
                )
                filled_at[env, agent, 0], filled_at[env, agent, 1] = row, col
                base = windows.base[env, agent]
                drawn = _draw_routes_in_window(
                    grid, values, origin, base, whole, True, row, col, occupancy[env], scratch, path_plane,
                    detour_plane,
                )  # fmt: skip
                margin *= 4


@njit(cache=True)
def write_other_goals_channel(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    goal_counts,  # (E, H, W) int32, from count_active_cells over goals
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
    """Writes the `path`, `detour` and `other_goals` channels of an observation spec into the env's buffer.

    `channels` is the spec's channel tuple (its order is the buffer's channel order); channels other than
    these three are left to the env. `distances` is shared with other users of the env's distance fields;
    the path and detour channels read its fields when it can keep the field of every cell of the batch
    (`uses_windows` is False), else per-agent windows of `window_budget` bytes in all (each side at least
    4 (radius + 1)).
    """

    def __init__(
        self, channels: tuple[str, ...], distances: DistanceCache, window_budget: int = PATH_WINDOW_BUDGET
    ) -> None:
        self.path_channel = channels.index("path") if "path" in channels else -1
        self.other_goals_channel = channels.index("other_goals") if "other_goals" in channels else -1
        self.detour_channel = channels.index("detour") if "detour" in channels else -1
        self.distances = distances
        self.obstacles = distances.obstacles
        self.uses_windows = distances.capacity < self.obstacles.size
        self.window_budget = window_budget
        self.windows: Windows | None = None
        self._goal_counts = np.zeros(self.obstacles.shape, dtype=np.int32)
        self._agent_counts = np.zeros(self.obstacles.shape, dtype=np.int32)
        self._scratch = new_detour_scratch(0)

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

    def _write_routes(
        self, obs: np.ndarray, positions: np.ndarray, goals: np.ndarray, active: np.ndarray
    ) -> None:
        """The path and detour channels, from the cached full fields or from the agents' windows (the same
        values)."""
        if self.detour_channel >= 0:
            count_active_cells(positions, active, self._agent_counts)
        size = obs.shape[-1]
        if self._scratch.costs.shape[0] != size:
            self._scratch = new_detour_scratch(size)
        channels = (self.path_channel, self.detour_channel)
        if not self.uses_windows:
            self.distances.refresh()
            write_route_channels_from_fields(
                positions, goals, self.obstacles, self._agent_counts, self.distances.arrays, self._scratch,
                *channels, obs,
            )  # fmt: skip
            return
        radius = size // 2
        if self.windows is None or self.windows.goal.shape[1] != obs.shape[1] or self._radius != radius:
            self._allocate(obs.shape[1], radius)
        windows = self.windows
        forget_changed_maps(self.obstacles, self._known_obstacles, windows.goal)
        write_route_channels_from_windows(
            positions, goals, self.obstacles, self._agent_counts, windows, self._filled_at, self._search,
            self._scratch, *channels, obs,
        )  # fmt: skip

    def write(self, obs: np.ndarray, positions: np.ndarray, goals: np.ndarray, active: np.ndarray) -> None:
        """Fill the extra channels of `obs` (E, N, C, F, F) for the current state."""
        if self.path_channel >= 0 or self.detour_channel >= 0:
            self._write_routes(obs, positions, goals, active)
        if self.other_goals_channel >= 0:
            count_active_cells(goals, active, self._goal_counts)
            write_other_goals_channel(
                positions, goals, active, self._goal_counts, self.other_goals_channel, obs
            )
