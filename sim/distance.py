"""Distance fields: breadth-first cost-to-go from a goal cell, cached per environment and goal.

A distance field holds, for every cell of one environment's map, the number of moves (4-connected, unit cost,
other agents ignored) to reach the goal; obstacles and unreachable cells hold `UNREACHABLE`. Fields serve the
shortest-path greedy baseline, the SRMT `path` observation channel and the directional reward schemes.

Cache policy (bounded memory at 10k agents on 512x512, where one field is 1 MiB and 10k distinct goals would
need 10 GiB): a fixed pool of `capacity` fields, allocated once, keyed by (env, goal cell). Agents sharing a
goal share its field; a lifelong goal change computes only the new goal's field. When the pool is full, the
least recently used field is recomputed in place (LRU by count of fields). Every query ensures and reads its
field before the next one is ensured, so results never depend on the capacity, only the speed does: with more
distinct live goals than `capacity`, fields are recomputed on every query (O(H*W) each).
A field is dropped when its environment's obstacle map changes (a reset onto a new map).

Buffer layout (the `CacheArrays` named tuple that kernels take as `cache`):
    fields        (S, H, W) int32   the pool of S = capacity fields
    slot_key      (S,) int64        flat key (env * H + row) * W + col of the field in the slot, -1 if empty
    slot_used     (S,) int64        the query clock when the slot was last read (LRU order)
    slot_of_cell  (E, H, W) int32   the slot holding the field of goal (env, row, col), -1 if none
    clock         (1,) int64        the query counter
    queue         (H*W,) int32      BFS scratch: flat cell indices
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from sim.actions import COL_STEPS, ROW_STEPS

UNREACHABLE = np.int32(2**30)
"""Distance of obstacles and of cells not connected to the goal (large, and safe to add small numbers to)."""

DEFAULT_MEMORY_BUDGET = 256 * 2**20
"""Bytes of distance fields a cache keeps by default (256 fields at 512x512, 16k at 128x128)."""


@njit(cache=True)
def bfs_distance(
    obstacles,  # (H, W) uint8, 1 = obstacle
    goal_row,  # int
    goal_col,  # int
    out,  # (H, W) int32, written: moves to the goal, UNREACHABLE for obstacles and other components
    queue,  # (H * W,) int32 scratch
):
    """Fill `out` with the 4-connected unit-cost distance from every cell to (goal_row, goal_col)."""
    height, width = obstacles.shape
    out[:, :] = UNREACHABLE
    if obstacles[goal_row, goal_col] != 0:
        return
    out[goal_row, goal_col] = 0
    queue[0] = goal_row * width + goal_col
    head, tail = 0, 1
    while head < tail:
        cell = queue[head]
        head += 1
        row, col = cell // width, cell % width
        next_distance = out[row, col] + 1
        for k in range(4):
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if 0 <= r < height and 0 <= c < width and obstacles[r, c] == 0 and out[r, c] == UNREACHABLE:
                out[r, c] = next_distance
                queue[tail] = r * width + c
                tail += 1


@njit(cache=True)
def ensure_field(
    env,  # int, environment index
    goal_row,  # int
    goal_col,  # int
    obstacles,  # (E, H, W) uint8
    cache,  # CacheArrays (module docstring), updated
):
    """Return the slot holding the field of goal (env, goal_row, goal_col), computing it on a miss."""
    fields, slot_key, slot_used, slot_of_cell, clock, queue = cache
    _, height, width = obstacles.shape
    clock[0] += 1
    slot = slot_of_cell[env, goal_row, goal_col]
    if slot < 0:
        slot = np.argmin(slot_used)  # empty slots hold -1, so they go first, then the least recently used
        old_key = slot_key[slot]
        if old_key >= 0:
            old_cell = old_key % (height * width)
            slot_of_cell[old_key // (height * width), old_cell // width, old_cell % width] = -1
        bfs_distance(obstacles[env], goal_row, goal_col, fields[slot], queue)
        slot_key[slot] = (env * height + goal_row) * width + goal_col
        slot_of_cell[env, goal_row, goal_col] = slot
    slot_used[slot] = clock[0]
    return slot


@njit(cache=True)
def forget_changed_maps(
    obstacles,  # (E, H, W) uint8, the maps now
    known_obstacles,  # (E, H, W) uint8, the maps the cached fields were computed on; updated
    slot_key,  # (S,) int64
    slot_used,  # (S,) int64
    slot_of_cell,  # (E, H, W) int32
):
    """Drop every cached field of an environment whose obstacle map changed since the fields were computed."""
    num_envs, height, width = obstacles.shape
    for env in range(num_envs):
        if np.array_equal(obstacles[env], known_obstacles[env]):
            continue
        known_obstacles[env] = obstacles[env]
        slot_of_cell[env] = -1
        for slot in range(slot_key.shape[0]):
            if slot_key[slot] >= 0 and slot_key[slot] // (height * width) == env:
                slot_key[slot] = -1
                slot_used[slot] = -1


@njit(cache=True)
def distances_at(
    positions,  # (E, N, 2) int32, cells to measure from
    goals,  # (E, N, 2) int32
    obstacles,  # (E, H, W) uint8
    cache,  # CacheArrays, updated
    out,  # (E, N) int32, written: distance from positions[e, i] to goals[e, i]
):
    """Look up every agent's cost-to-go in the cached fields of its goal."""
    for env in range(out.shape[0]):
        for agent in range(out.shape[1]):
            slot = ensure_field(env, goals[env, agent, 0], goals[env, agent, 1], obstacles, cache)
            out[env, agent] = cache.fields[slot, positions[env, agent, 0], positions[env, agent, 1]]


class CacheArrays(NamedTuple):
    """The cache's buffers (module docstring); kernels take it whole as `cache`."""

    fields: np.ndarray
    slot_key: np.ndarray
    slot_used: np.ndarray
    slot_of_cell: np.ndarray
    clock: np.ndarray
    queue: np.ndarray


class DistanceCache:
    """Distance fields of (env, goal) pairs over a batch of obstacle maps, LRU-bounded by count of fields.

    `obstacles` is the live (E, H, W) uint8 map array (e.g. `GridEnv.obstacles`); the cache notices when an
    environment's map changes and drops that environment's fields. `capacity` (fields kept) defaults to what
    fits in `memory_budget` bytes, at least 1 and at most E*H*W (every possible goal).
    """

    def __init__(
        self, obstacles: np.ndarray, capacity: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET
    ) -> None:
        if obstacles.ndim != 3 or obstacles.dtype != np.uint8:
            raise ValueError(f"obstacles must be (E, H, W) uint8, got {obstacles.dtype} {obstacles.shape}")
        num_envs, height, width = obstacles.shape
        if capacity is None:
            capacity = memory_budget // (height * width * 4)
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 field, got {capacity}")
        capacity = min(capacity, num_envs * height * width)
        self.obstacles = obstacles
        self.capacity = capacity
        self._known_obstacles = np.full_like(obstacles, 2)  # 2 never equals a real map: first use fills it
        self.arrays = CacheArrays(
            fields=np.empty((capacity, height, width), dtype=np.int32),
            slot_key=np.full(capacity, -1, dtype=np.int64),
            slot_used=np.full(capacity, -1, dtype=np.int64),
            slot_of_cell=np.full((num_envs, height, width), -1, dtype=np.int32),
            clock=np.zeros(1, dtype=np.int64),
            queue=np.empty(height * width, dtype=np.int32),
        )

    def refresh(self) -> None:
        """Drop the fields of environments whose map changed; every public query calls this first."""
        a = self.arrays
        forget_changed_maps(self.obstacles, self._known_obstacles, a.slot_key, a.slot_used, a.slot_of_cell)

    def field(self, env: int, goal: tuple[int, int]) -> np.ndarray:
        """The (H, W) int32 distance field of `goal` (row, col) in environment `env` (a view: valid until the
        next query)."""
        self.refresh()
        slot = ensure_field(env, int(goal[0]), int(goal[1]), self.obstacles, self.arrays)
        return self.arrays.fields[slot]

    def distance_to_goal(
        self, positions: np.ndarray, goals: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Cost-to-go (E, N) int32 from `positions` (E, N, 2) to `goals` (E, N, 2); UNREACHABLE if none."""
        self.refresh()
        if out is None:
            out = np.empty(positions.shape[:2], dtype=np.int32)
        distances_at(positions, goals, self.obstacles, self.arrays, out)
        return out
