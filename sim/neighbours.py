"""Neighbour lists: for every active agent, the K nearest other active agents within a radius.

Distance is Chebyshev (max(|d_row|, |d_col|), the agent's square observation window), so `radius` r selects
the agents inside the (2r+1)x(2r+1) square around the agent; with r = obs_radius that is exactly the agents
an agent can see. A row lists neighbours nearest first, ties broken by lower agent index, padded with -1;
inactive agents get an all -1 row and never appear in another agent's row.

Cost O(N * K) on average: agents are bucketed into square cells of side max(1, floor(r)) (a counting sort,
ascending agent index inside a bucket), and each agent scans only the 3x3 buckets around its own.

Buffer layout:
    positions      (E, N, 2) int32   (row, col)
    active         (E, N) bool
    bucket_start   (B + 1,) int32    scratch: start of each bucket in `bucket_agents`, B = bucket rows * cols
    bucket_agents  (N,) int32        scratch: active agents sorted by bucket
    out            (E, N, K) int32   written
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def bucket_agents_by_cell(
    positions,  # (N, 2) int32, one environment
    active,  # (N,) bool
    side,  # int, bucket side in cells
    bucket_cols,  # int, buckets per row
    bucket_start,  # (B + 1,) int32, written
    bucket_agents,  # (N,) int32, written: active agents, grouped by bucket, ascending index inside one
):
    """Counting-sort the active agents of one environment into square buckets."""
    bucket_start[:] = 0
    for agent in range(positions.shape[0]):
        if active[agent]:
            bucket = (positions[agent, 0] // side) * bucket_cols + positions[agent, 1] // side
            bucket_start[bucket + 1] += 1
    for bucket in range(1, bucket_start.shape[0]):
        bucket_start[bucket] += bucket_start[bucket - 1]
    fill = bucket_start[:-1].copy()
    for agent in range(positions.shape[0]):
        if active[agent]:
            bucket = (positions[agent, 0] // side) * bucket_cols + positions[agent, 1] // side
            bucket_agents[fill[bucket]] = agent
            fill[bucket] += 1


@njit(cache=True)
def insert_nearest(
    candidate,  # int, agent index
    distance,  # int
    count,  # int, entries already kept
    kept_agents,  # (K,) int32, kept agents sorted by (distance, index); updated
    kept_distances,  # (K,) int64, updated
):
    """Insert a candidate into the sorted top-K lists if it beats the worst kept one; return the new count."""
    capacity = kept_agents.shape[0]
    slot = count
    while slot > 0 and (
        kept_distances[slot - 1] > distance
        or (kept_distances[slot - 1] == distance and kept_agents[slot - 1] > candidate)
    ):
        slot -= 1
    if slot >= capacity:
        return count
    last = min(count, capacity - 1)
    for k in range(last, slot, -1):
        kept_agents[k] = kept_agents[k - 1]
        kept_distances[k] = kept_distances[k - 1]
    kept_agents[slot] = candidate
    kept_distances[slot] = distance
    return min(count + 1, capacity)


@njit(cache=True)
def nearest_neighbours(
    positions,  # (E, N, 2) int32
    active,  # (E, N) bool
    radius,  # int, Chebyshev radius in cells
    map_shape,  # (2,) int64, (H, W) covering every position
    bucket_start,  # (B + 1,) int32 scratch
    bucket_agents,  # (N,) int32 scratch
    out,  # (E, N, K) int32, written
):
    """Write the K nearest active agents within `radius` of every active agent (module docstring)."""
    side = max(1, radius)
    bucket_rows, bucket_cols = (map_shape[0] + side - 1) // side, (map_shape[1] + side - 1) // side
    kept_distances = np.empty(out.shape[2], dtype=np.int64)
    out[:] = -1
    for env in range(positions.shape[0]):
        bucket_agents_by_cell(positions[env], active[env], side, bucket_cols, bucket_start, bucket_agents)
        for agent in range(positions.shape[1]):
            if not active[env, agent]:
                continue
            row, col = positions[env, agent, 0], positions[env, agent, 1]
            count = 0
            for bucket_row in range(max(0, row // side - 1), min(bucket_rows, row // side + 2)):
                for bucket_col in range(max(0, col // side - 1), min(bucket_cols, col // side + 2)):
                    bucket = bucket_row * bucket_cols + bucket_col
                    for k in range(bucket_start[bucket], bucket_start[bucket + 1]):
                        other = bucket_agents[k]
                        distance = max(
                            abs(positions[env, other, 0] - row), abs(positions[env, other, 1] - col)
                        )
                        if other != agent and distance <= radius:
                            count = insert_nearest(other, distance, count, out[env, agent], kept_distances)


class NeighbourFinder:
    """Computes (E, N, K) neighbour lists for agents on maps of at most `map_shape` (H, W) cells.

    `radius` may be fractional (the scenario's `neighbour_radius`): cells at Chebyshev distance
    <= floor(radius) count.
    """

    def __init__(self, num_agents: int, map_shape: tuple[int, int], k: int, radius: float) -> None:
        if k < 1:
            raise ValueError(f"neighbours K must be >= 1, got {k}")
        if radius < 0:
            raise ValueError(f"neighbour_radius must be >= 0, got {radius}")
        self.k = k
        self.radius = math.floor(radius)
        self.map_shape = np.array(map_shape, dtype=np.int64)
        side = max(1, self.radius)
        num_buckets = -(-map_shape[0] // side) * -(-map_shape[1] // side)
        self._bucket_start = np.empty(num_buckets + 1, dtype=np.int32)
        self._bucket_agents = np.empty(num_agents, dtype=np.int32)

    def __call__(
        self, positions: np.ndarray, active: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Neighbour lists (E, N, K) int32 for `positions` (E, N, 2) int32 and `active` (E, N) bool."""
        if out is None:
            out = np.empty((*active.shape, self.k), dtype=np.int32)
        nearest_neighbours(
            positions, active, self.radius, self.map_shape, self._bucket_start, self._bucket_agents, out
        )
        return out
