"""Observation kernels: POGEMA's egocentric windows, written straight into the caller's float32 buffer.

Buffers (one environment): obs (N, C, F, F) float32 (or uint8), C-contiguous, with F = 2r + 1;
obstacles, occupancy (Hp, Wp) uint8 padded by r (so the window of an agent at unpadded (row, col) starts
at padded (row, col)); positions, goals (N, 2) int32 unpadded; observed_at (N, 3) int32, what each
agent's observation holds already: the (row, col) its obstacle window was written at and the flat index
of its goal mark in the goal window (all -1 at the start of an episode: nothing written for this map).
A channel index < 0 means the channel is not requested. Only what changed is written: the obstacle
window when the agent moved, two cells of the goal window, the agents window always.

The window writers address obs by flat offsets (`window_start`) rather than through `obs[i, c]` views:
each view costs an atomic reference-count increment and decrement, as much as the copy it serves.
"""

from __future__ import annotations

from numba import njit, uint64

from sim.kernels.lanes import copy_lanes

LANES = 8
"""Cells per vector copy in a window row: 8 float32 are one AVX register."""
WIDE_LANES = 16
"""Cells per copy of a whole row of a window up to 16 wide (F = 9 .. 15: radius 4 .. 7)."""


@njit(cache=True)
def window_start(agent, channel, num_channels, size):
    """Flat offset in obs (N, C, F, F) of window obs[agent, channel]; all int64, size = F."""
    return (agent * num_channels + channel) * size * size


@njit(cache=True, forceinline=True)
def _copy_row(obs, dst, grid, src, size):
    """One window row of `size` >= `LANES` cells, obs flat offset dst <- grid flat offset src (uint64), as
    `LANES`-cell runs, the last one flush with the row's end (for F = 11, cells 0-7 and 3-10)."""
    last_run = size - uint64(LANES)
    run = uint64(0)
    while run < last_run:
        copy_lanes(obs, dst + run, grid, src + run, LANES)
        run += uint64(LANES)
    copy_lanes(obs, dst + last_run, grid, src + last_run, LANES)


@njit(cache=True, forceinline=True)
def write_window(obs, start, grid, row, col, size):
    """The F x F window at flat offset `start` of obs (C-contiguous float32 or uint8, any rank) <-
    grid[row:row + F, col:col + F]; grid (Hp, Wp) uint8 holds the window; row, col >= 0; size = F.

    Windows narrower than `LANES` go cell by cell. Up to `WIDE_LANES` wide, every row but the last is one
    `WIDE_LANES` run that spills into the start of the next row, which the next copy then overwrites (half
    the stores; the spilled read stays inside the grid, whose next row exists); the last row, and every row
    of wider windows, goes as `LANES`-cell runs that end flush with the row (nothing outside the window is
    read or written)."""
    size = uint64(size)
    stride = uint64(grid.shape[1])
    dst = uint64(start)
    src = uint64(row) * stride + uint64(col)
    if size < LANES:
        for _ in range(size):
            for d_col in range(size):
                copy_lanes(obs, dst + d_col, grid, src + d_col, 1)
            dst += size
            src += stride
    elif size <= WIDE_LANES:
        for _ in range(size - uint64(1)):
            copy_lanes(obs, dst, grid, src, WIDE_LANES)
            dst += size
            src += stride
        _copy_row(obs, dst, grid, src, size)
    else:
        for _ in range(size):
            _copy_row(obs, dst, grid, src, size)
            dst += size
            src += stride


@njit(cache=True)
def write_goal(cells, start, row, col, goal_row, goal_col, radius, marked):
    """The window at flat offset `start` of the flat cells (M,) <- one-hot of the goal, each axis of the
    offset clamped to the window border; marked: the window cell holding the 1 (-1: the window is not a
    one-hot yet). Returns the new one."""
    size = 2 * radius + 1
    if marked < 0:
        cells[start : start + size * size] = 0
    else:
        cells[start + marked] = 0
    mark_row = radius - min(max(row - goal_row, -radius), radius)
    mark_col = radius - min(max(col - goal_col, -radius), radius)
    cells[start + mark_row * size + mark_col] = 1
    return mark_row * size + mark_col


@njit(cache=True)
def observe(
    obs,
    obstacles,
    occupancy,
    positions,
    goals,
    observed_at,
    radius,
    obstacles_channel,
    agents_channel,
    goal_channel,
):
    """POGEMA's 3 channels for every agent (hidden ones included, as POGEMA does)."""
    num_channels, size = obs.shape[1], obs.shape[2]
    cells = obs.reshape(-1)
    for i in range(positions.shape[0]):
        row, col = positions[i, 0], positions[i, 1]
        if obstacles_channel >= 0 and (observed_at[i, 0] != row or observed_at[i, 1] != col):
            start = window_start(i, obstacles_channel, num_channels, size)
            write_window(obs, start, obstacles, row, col, size)
            observed_at[i, 0], observed_at[i, 1] = row, col
        if agents_channel >= 0:
            write_window(obs, window_start(i, agents_channel, num_channels, size), occupancy, row, col, size)
        if goal_channel >= 0:
            start = window_start(i, goal_channel, num_channels, size)
            observed_at[i, 2] = write_goal(
                cells, start, row, col, goals[i, 0], goals[i, 1], radius, observed_at[i, 2]
            )
