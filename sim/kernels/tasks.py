"""Task generation kernels: free-cell components, POGEMA's start/goal placement, lifelong goal draws.

Buffers (one environment; maps unpadded, cells as flat indices row * width + col):
    obstacles   (H, W) uint8, 1 = obstacle
    labels      (H, W) int32, component id (0..C-1) of each free cell, -1 on obstacles
    comp_cells  (M,) int64, the free cells grouped by component, row-major inside each component
    comp_offset (C + 1,) int64, component c owns comp_cells[comp_offset[c]:comp_offset[c + 1]]
    streams     (N, STREAM_WORDS) uint64, per-agent numpy-exact PCG64 streams (`sim.kernels.rng`)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.actions import COL_STEPS, ROW_STEPS
from sim.kernels.rng import bounded_below

GOALS_FROM_COMPONENT = 0
GOALS_FROM_LIST = 1
GOALS_FROM_SEQUENCE = 2


@njit(cache=True)
def label_components(obstacles, labels, queue):
    """4-connected components of free cells; returns their count.
    obstacles (H, W) uint8 in; labels (H, W) int32 out; queue (H * W,) int64 scratch."""
    height, width = obstacles.shape
    labels[:] = -1
    count = 0
    for start in range(height * width):
        if obstacles.flat[start] != 0 or labels.flat[start] != -1:
            continue
        labels.flat[start] = count
        queue[0] = start
        head, tail = 0, 1
        while head < tail:
            row, col = divmod(queue[head], width)
            head += 1
            for move in range(4):
                nrow, ncol = row + ROW_STEPS[move], col + COL_STEPS[move]
                inside = 0 <= nrow < height and 0 <= ncol < width
                if inside and obstacles[nrow, ncol] == 0 and labels[nrow, ncol] == -1:
                    labels[nrow, ncol] = count
                    queue[tail] = nrow * width + ncol
                    tail += 1
        count += 1
    return count


@njit(cache=True)
def group_cells(labels, num_components, comp_cells, comp_offset):
    """Counting sort of the free cells by component, keeping row-major order inside each (the order of
    POGEMA's component lists). labels (H, W) int32 in; comp_cells (M,) int64, comp_offset (C + 1,) int64
    out."""
    comp_offset[: num_components + 1] = 0
    for cell in range(labels.size):
        if labels.flat[cell] >= 0:
            comp_offset[labels.flat[cell] + 1] += 1
    for c in range(num_components):
        comp_offset[c + 1] += comp_offset[c]
    cursor = comp_offset[:num_components].copy()
    for cell in range(labels.size):
        label = labels.flat[cell]
        if label >= 0:
            comp_cells[cursor[label]] = cell
            cursor[label] += 1


@njit(cache=True)
def place_agents(order, labels, comp_offset, starts, goals):
    """POGEMA's `placing`: scan the shuffled free cells; a cell fulfils the latest pending goal request of
    its component (LIFO), else starts a new agent when its component still has two unreserved cells.
    order (M,) int64 flat cells, shuffled; labels (H, W) int32; comp_offset (C + 1,) int64;
    starts, goals (N, 2) int64 out. Returns the number of agents placed (< N: the map is too full)."""
    num_agents = starts.shape[0]
    width = labels.shape[1]
    num_components = comp_offset.shape[0] - 1
    remaining = comp_offset[1:] - comp_offset[:-1]
    pending_top = np.full(num_components, -1, np.int64)
    pending_below = np.full(num_agents, -1, np.int64)
    placed = 0
    done = 0
    for k in range(order.shape[0]):
        cell = order[k]
        comp = labels.flat[cell]
        if pending_top[comp] >= 0:
            agent = pending_top[comp]
            pending_top[comp] = pending_below[agent]
            goals[agent, 0], goals[agent, 1] = divmod(cell, width)
            done += 1
            continue
        if placed >= num_agents:
            if done >= num_agents:
                break
            continue
        if remaining[comp] >= 2:
            remaining[comp] -= 2
            starts[placed, 0], starts[placed, 1] = divmod(cell, width)
            pending_below[placed] = pending_top[comp]
            pending_top[comp] = placed
            placed += 1
    return placed


@njit(cache=True)
def draw_component_goal(stream, labels, comp_cells, comp_offset, row, col):
    """POGEMA's `generate_new_target`: a uniform cell of the agent's component, redrawn while it equals
    the agent's cell. Returns the flat cell (row-major over labels' width)."""
    comp = labels[row, col]
    first = comp_offset[comp]
    size = comp_offset[comp + 1] - first
    here = row * labels.shape[1] + col
    cell = comp_cells[first + bounded_below(stream, size)]
    while cell == here:
        cell = comp_cells[first + bounded_below(stream, size)]
    return cell


@njit(cache=True)
def draw_listed_goal(stream, goal_list, num_listed, row, col, obs_radius):
    """POGEMA's `generate_from_possible_targets` with its quirk: the redraw test compares an unpadded
    candidate with the padded position, so it rejects the cell (row + r, col + r), never the agent's own.
    goal_list (L, 2) int64 (row, col). Returns the index into goal_list."""
    index = bounded_below(stream, num_listed)
    while goal_list[index, 0] == row + obs_radius and goal_list[index, 1] == col + obs_radius:
        index = bounded_below(stream, num_listed)
    return index
