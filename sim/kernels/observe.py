"""Observation kernels: POGEMA's egocentric windows, written straight into the caller's float32 buffer.

Buffers (one environment): obs (N, C, F, F) float32 with F = 2r + 1; obstacles, occupancy (Hp, Wp) uint8
padded by r (so the window of an agent at unpadded (row, col) starts at padded (row, col));
positions, goals (N, 2) int32 unpadded. A channel index < 0 means the channel is not requested.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def write_window(out, grid, row, col):
    """out (F, F) float32 <- grid[row:row + F, col:col + F]; grid (Hp, Wp) uint8."""
    size = out.shape[0]
    for d_row in range(size):
        for d_col in range(size):
            out[d_row, d_col] = grid[row + d_row, col + d_col]


@njit(cache=True)
def write_goal(out, row, col, goal_row, goal_col, radius):
    """out (F, F) float32 <- one-hot of the goal, each axis of the offset clamped to the window border."""
    out[:, :] = 0.0
    d_row = min(max(row - goal_row, -radius), radius)
    d_col = min(max(col - goal_col, -radius), radius)
    out[radius - d_row, radius - d_col] = 1.0


@njit(cache=True)
def observe(
    obs, obstacles, occupancy, positions, goals, radius, obstacles_channel, agents_channel, goal_channel
):
    """POGEMA's 3 channels for every agent (hidden ones included, as POGEMA does)."""
    for i in range(positions.shape[0]):
        row, col = positions[i, 0], positions[i, 1]
        if obstacles_channel >= 0:
            write_window(obs[i, obstacles_channel], obstacles, row, col)
        if agents_channel >= 0:
            write_window(obs[i, agents_channel], occupancy, row, col)
        if goal_channel >= 0:
            write_goal(obs[i, goal_channel], row, col, goals[i, 0], goals[i, 1], radius)
