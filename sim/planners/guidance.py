"""Traffic-flow guidance for PIBT (Chen, Harabor, Li, Stuckey, "Traffic Flow Optimisation for Lifelong
Multi-Agent Path Finding", AAAI 2024; their code: nobodyczcz/Guided-PIBT).

Each agent gets a guide path to its goal that avoids congestion: an A* over the map whose move cost adds,
to the unit step, the vertex flow (how many guide paths already pass the cell entered, halved) and the
contraflow (guide paths using the same edge the other way, times those using it this way plus one),
weighted by `vertex_weight` and `contra_weight`; the heuristic is the exact distance (every move costs at
least 1, so it is consistent). The guides of all agents of an environment are summed in a flow map
(guide-path edges leaving each cell, per direction). PIBT then ranks an agent's candidate cells by its
distance to the guide path plus the guide's remaining length from the path cell reached first (the
paper's "distance to path" heuristic), instead of the plain distance to the goal.

A guide is planned from the agent's cell when its goal changes (or its map changes); `refine` agents per
step (drawn at random) drop their guide from the flow and plan it again from where they stand, with
everyone else's flow in place (the paper's LNS refinement, one agent at a time). The heuristic is held in
the agent's distance window (`sim.planners.fields.Windows`), which must cover the whole map: guidance is
for maps whose windows fit the budget whole (the benchmark's maps, not swarm scale).

Buffers (`Guides`, E environments, N agents, H x W map buffer, cells flat):
    path    (E, N, H * W) int32  each agent's guide, cells from where it was planned to the goal
    length  (E, N) int32         cells in the guide (0: none)
    flow    (E, H * W, 4) int32  guide edges leaving a cell, per direction (up, down, left, right)
    goal    (E, N, 2) int32      the goal each guide leads to, (-1, -1) when none
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS
from sim.paths import splitmix64
from sim.planners.fields import UNKNOWN, box_bfs, searched_distance


class Guides(NamedTuple):
    """Guide paths and their flow map (module docstring); kernels take it whole."""

    path: np.ndarray
    length: np.ndarray
    flow: np.ndarray
    goal: np.ndarray


def new_guides(num_envs: int, num_agents: int, map_shape: tuple[int, int]) -> Guides:
    cells = map_shape[0] * map_shape[1]
    return Guides(
        path=np.zeros((num_envs, num_agents, cells), dtype=np.int32),
        length=np.zeros((num_envs, num_agents), dtype=np.int32),
        flow=np.zeros((num_envs, cells, 4), dtype=np.int32),
        goal=np.full((num_envs, num_agents, 2), -1, dtype=np.int32),
    )


_OPPOSITE = np.array([1, 0, 3, 2], dtype=np.int64)  # up <-> down, left <-> right


@njit(cache=True)
def _direction(cell, following, width):
    """Index (0 up, 1 down, 2 left, 3 right) of the move between adjacent flat cells."""
    step = following - cell
    if step == -width:
        return 0
    if step == width:
        return 1
    if step == -1:
        return 2
    return 3


@njit(cache=True)
def add_flow(path, length, flow, width, sign):
    """Add (sign 1) or remove (sign -1) one guide's edges from the flow map. path (L,) int32, flow
    (H * W, 4) int32."""
    for k in range(length - 1):
        flow[path[k], _direction(path[k], path[k + 1], width)] += sign


@njit(cache=True)
def plan_guide(
    grid,  # (H, W) uint8, the environment's map buffer
    height,  # int, the environment's map rows
    width,  # int, the environment's map columns
    start,  # int, flat cell
    goal,  # int, flat cell
    search,  # fields.FieldSearch holding the goal's exact distances over the whole map (box_bfs)
    flow,  # (H * W, 4) int32, the other agents' guides
    vertex_weight,  # float
    contra_weight,  # float
    cost,  # (H * W,) float64 scratch
    parent,  # (H * W,) int32 scratch
    closed,  # (H * W,) int64 scratch: search id of the last search that closed the cell
    search_id,  # int, a value `closed` does not hold yet
    path,  # (H * W,) int32, written: the guide's cells, start first
):
    """A* for the least congested guide from start to goal; returns its number of cells (0 if none)."""
    map_width = grid.shape[1]
    if searched_distance(search, start) < 0:
        return 0
    cost[start] = 0.0
    parent[start] = -1
    heap = [(float(searched_distance(search, start)), 0.0, np.int64(start))]
    reached = False
    while heap:
        _, g, cell = heapq.heappop(heap)
        if closed[cell] == search_id:
            continue
        closed[cell] = search_id
        if cell == goal:
            reached = True
            break
        row, col = cell // map_width, cell % map_width
        for k in range(4):
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if r < 0 or r >= height or c < 0 or c >= width or grid[r, c] != 0:
                continue
            following = r * map_width + c
            to_go = searched_distance(search, following)
            if closed[following] == search_id or to_go < 0:
                continue
            entered = flow[following, 0] + flow[following, 1] + flow[following, 2] + flow[following, 3]
            contra = (flow[cell, k] + 1) * flow[following, _OPPOSITE[k]]
            step = 1.0 + vertex_weight * (entered // 2) + contra_weight * contra
            candidate = g + step
            if closed[following] != -search_id or candidate < cost[following]:
                closed[following] = -search_id  # opened by this search
                cost[following] = candidate
                parent[following] = cell
                heapq.heappush(heap, (candidate + to_go, candidate, following))
    if not reached:
        return 0
    length = 0
    cell = goal
    while cell != -1:
        path[length] = cell
        length += 1
        cell = parent[cell]
    path[:length] = path[:length][::-1].copy()
    return length


@njit(cache=True)
def path_heuristic(
    grid,  # (H, W) uint8
    height,  # int
    width,  # int
    path,  # (L,) int32, the guide, start first
    length,  # int
    search,  # fields.FieldSearch scratch: label holds the distance to the path
    togo,  # (H * W,) int32 scratch: remaining guide length from the path cell reached first
    values,  # (S, S) uint16 with S >= H, W, written: distance to the path + guide remaining
):
    """The distance-to-path heuristic over the whole map: a breadth-first search from every guide cell at
    once, seeded from the goal end, so each cell takes the remaining length of the first path cell that
    reaches it."""
    map_width = grid.shape[1]
    label, rows, cols, current = search
    current[0] += 1
    tag = current[0] << 32
    tail = 0
    for k in range(length - 1, -1, -1):
        cell = path[k]
        if label[cell] >= tag:
            continue
        label[cell] = tag
        togo[cell] = length - 1 - k
        rows[tail], cols[tail] = cell // map_width, cell % map_width
        tail += 1
    head = 0
    while head < tail:
        row, col = rows[head], cols[head]
        cell = row * map_width + col
        head += 1
        for k in range(4):
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if r < 0 or r >= height or c < 0 or c >= width or grid[r, c] != 0:
                continue
            following = r * map_width + c
            if label[following] >= tag:
                continue
            label[following] = label[cell] + 1
            togo[following] = togo[cell]
            rows[tail], cols[tail] = r, c
            tail += 1
    values[:, :] = UNKNOWN
    for r in range(height):
        for c in range(width):
            reach = searched_distance(search, r * map_width + c)
            if reach >= 0:
                values[r, c] = min(reach + togo[r * map_width + c], UNKNOWN - 1)


@njit(cache=True)
def _guide_agent(
    env, agent, row, col, goal_row, goal_col, grid, height, width, windows, guides, search, scratch, weights
):
    """(Re)plan one agent's guide from its cell and write its heuristic window; flow kept consistent."""
    map_width = grid.shape[1]
    flow = guides.flow[env]
    add_flow(guides.path[env, agent], guides.length[env, agent], flow, map_width, -1)
    guides.length[env, agent] = 0
    box_bfs(grid, goal_row, goal_col, 0, height, 0, width, search)
    cost, parent, closed, togo, search_counter = scratch
    search_counter[0] += 1
    length = plan_guide(
        grid, height, width, row * map_width + col, goal_row * map_width + goal_col, search, flow, weights[0],
        weights[1], cost, parent, closed, search_counter[0], guides.path[env, agent],
    )  # fmt: skip
    if length == 0:  # unreachable goal: a one-cell guide where the agent stands
        guides.path[env, agent, 0] = row * map_width + col
        length = 1
    guides.length[env, agent] = length
    add_flow(guides.path[env, agent], length, flow, map_width, 1)
    path_heuristic(
        grid, height, width, guides.path[env, agent], length, search, togo, windows.values[env, agent]
    )
    windows.origin[env, agent, 0], windows.origin[env, agent, 1] = 0, 0
    windows.base[env, agent] = 0
    windows.whole[env, agent] = True
    windows.goal[env, agent, 0], windows.goal[env, agent, 1] = goal_row, goal_col
    guides.goal[env, agent, 0], guides.goal[env, agent, 1] = goal_row, goal_col


@njit(cache=True)
def ensure_guides(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    obstacles,  # (E, H, W) uint8
    map_shapes,  # (E, 2) int32
    windows,  # sim.planners.fields.Windows, whole-map windows, written for guided agents
    guides,  # Guides, updated
    search,  # fields.FieldSearch scratch
    scratch,  # tuple of guide scratch (new_guide_scratch)
    weights,  # (2,) float64: vertex_weight, contra_weight
    refine,  # int, agents whose guide is planned again per environment and call
    rng_state,  # (1,) uint64
):
    """Plan the guide of every active agent whose goal changed (or whose window was dropped with its
    map), drop the guides of inactive agents, then refine `refine` random agents' guides."""
    num_envs, num_agents = active.shape
    for env in range(num_envs):
        height, width = map_shapes[env, 0], map_shapes[env, 1]
        grid = obstacles[env]
        map_width = grid.shape[1]
        fresh = True  # every window dropped: a new map (or the first call), so no old guide counts
        for agent in range(num_agents):
            if windows.goal[env, agent, 0] >= 0:
                fresh = False
                break
        if fresh:
            guides.flow[env] = 0
            guides.length[env] = 0
            guides.goal[env] = -1
        for agent in range(num_agents):
            if not active[env, agent]:
                add_flow(guides.path[env, agent], guides.length[env, agent], guides.flow[env], map_width, -1)
                guides.length[env, agent] = 0
                continue
            goal_row, goal_col = goals[env, agent, 0], goals[env, agent, 1]
            if (
                windows.goal[env, agent, 0] == goal_row
                and windows.goal[env, agent, 1] == goal_col
                and guides.goal[env, agent, 0] == goal_row
                and guides.goal[env, agent, 1] == goal_col
            ):
                continue
            _guide_agent(
                env, agent, positions[env, agent, 0], positions[env, agent, 1], goal_row, goal_col, grid,
                height, width, windows, guides, search, scratch, weights,
            )  # fmt: skip
        for _ in range(refine):
            agent = int(splitmix64(rng_state) % np.uint64(num_agents))
            if active[env, agent]:
                _guide_agent(
                    env, agent, positions[env, agent, 0], positions[env, agent, 1], goals[env, agent, 0],
                    goals[env, agent, 1], grid, height, width, windows, guides, search, scratch, weights,
                )  # fmt: skip


def new_guide_scratch(map_shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Scratch of the guide searches: cost, parent, closed, togo, search counter."""
    cells = map_shape[0] * map_shape[1]
    return (
        np.zeros(cells, dtype=np.float64),
        np.zeros(cells, dtype=np.int32),
        np.zeros(cells, dtype=np.int64),
        np.zeros(cells, dtype=np.int32),
        np.zeros(1, dtype=np.int64),
    )
