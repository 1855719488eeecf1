"""Extra observation channels beyond POGEMA's three, written into the env's (E, N, C, F, F) buffer.

`path` (SRMT's planned path, Sagirova et al., 2025): 1 on the cells of one shortest path from the agent's cell
to its goal (4-connected, static map, other agents ignored), drawn from the agent's own cell (the window
centre) up to the first path cell outside the window; 0 elsewhere. Among equally short paths, each step takes
the first move in action order up, down, left, right that lowers the distance (deterministic). If the goal is
unreachable the channel is all 0; an agent on its goal has only its centre cell set. Obstacles are *not*
folded in: SRMT's single obstacles-and-path channel (-1 obstacle, +1 path) is `path - obstacles`.

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


@njit(cache=True)
def draw_path(
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
def write_path_channel(
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
            draw_path(cache.fields[slot], row, col, obs[env, agent, channel])


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
    these two are left to the env. `distances` is shared with other users of the env's distance fields.
    """

    def __init__(self, channels: tuple[str, ...], distances: DistanceCache) -> None:
        self.path_channel = channels.index("path") if "path" in channels else -1
        self.other_goals_channel = channels.index("other_goals") if "other_goals" in channels else -1
        self.distances = distances
        self._goal_counts = np.zeros(distances.obstacles.shape, dtype=np.int32)

    def write(self, obs: np.ndarray, positions: np.ndarray, goals: np.ndarray, active: np.ndarray) -> None:
        """Fill the extra channels of `obs` (E, N, C, F, F) for the current state."""
        if self.path_channel >= 0:
            self.distances.refresh()
            write_path_channel(
                positions, goals, self.distances.obstacles, self.distances.arrays, self.path_channel, obs
            )
        if self.other_goals_channel >= 0:
            count_goals(goals, active, self._goal_counts)
            write_other_goals_channel(
                positions, goals, active, self._goal_counts, self.other_goals_channel, obs
            )
