"""Per-agent shortest paths for the greedy baseline at scale: one bounded search per goal change, the path
kept as a move list in a shared int8 pool and followed step by step.

Search: breadth-first from the goal, restricted to the cells c with dist(goal, c) + manhattan(c, agent) <=
bound. Every cell of every shortest path to the agent qualifies once bound >= the agent's distance d, so in
the restricted field those cells hold their exact BFS distance, and the neighbours one move downhill of such a
cell are exactly those of the full BFS field. The bound starts at the Manhattan distance and grows by a
doubling slack (0, 2, 6, 14, ...: the grid is bipartite, so d has the Manhattan distance's parity) until the
agent is reached, or until a search that pruned nothing misses it (the goal is unreachable). On open maps a
search visits about the goal-agent rectangle instead of the whole map. (A* to find d first was measured
slower on 20%-random maps: it must expand every cell with f < d, most of that rectangle, through a heap.)

Ties: walking from the agent, each move is drawn uniformly among the downhill moves (in action order up,
down, left, right) with one SplitMix64 draw, the rule the full-field greedy applies at every step; it is
applied once, when the path is planned, so the path's distribution is the same.

Buffers (`Plans`, E environments, N agents; cells flat row * W + col over the (H, W) map buffer):
    goal    (E, N, 2) int32  the goal the plan leads to, -1 without a plan
    cell    (E, N, 2) int32  where the agent stands when it is on its plan (the cursor's cell)
    start   (E, N) int64     offset of the plan's moves in the pool
    length  (E, N) int64     number of moves of the plan (0: on the goal, or the goal is unreachable)
    cursor  (E, N) int64     moves already made
    pool    (P,) int8        moves 1..4 of every plan
    used    (1,) int64       pool entries handed out
    request (1,) int64       the moves a plan that did not fit the pool needs
`Search` holds the scratch of one search: distance (H*W,) int32, stamp (H*W,) int64 (a cell's distance is
valid iff its stamp equals the search's id, so no search clears the whole map), stamp_id (1,) int64,
queue (H*W,) int32.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from sim.actions import COL_STEPS, ROW_STEPS

REACHED, PRUNED, EXHAUSTED = 0, 1, 2


class Plans(NamedTuple):
    """The plans of every agent (module docstring); kernels take it whole."""

    goal: np.ndarray
    cell: np.ndarray
    start: np.ndarray
    length: np.ndarray
    cursor: np.ndarray
    pool: np.ndarray
    used: np.ndarray
    request: np.ndarray


class Search(NamedTuple):
    """One search's scratch (module docstring)."""

    distance: np.ndarray
    stamp: np.ndarray
    stamp_id: np.ndarray
    queue: np.ndarray


def new_plans(num_envs: int, num_agents: int, pool_size: int) -> Plans:
    """Empty plans (every agent plans on its first call)."""
    shape = (num_envs, num_agents)
    return Plans(
        goal=np.full((*shape, 2), -1, dtype=np.int32), cell=np.zeros((*shape, 2), dtype=np.int32),
        start=np.zeros(shape, dtype=np.int64), length=np.zeros(shape, dtype=np.int64),
        cursor=np.zeros(shape, dtype=np.int64), pool=np.zeros(pool_size, dtype=np.int8),
        used=np.zeros(1, dtype=np.int64), request=np.zeros(1, dtype=np.int64),
    )  # fmt: skip


def new_search(num_cells: int) -> Search:
    """Scratch for searches over maps of up to `num_cells` cells."""
    return Search(
        distance=np.zeros(num_cells, dtype=np.int32), stamp=np.zeros(num_cells, dtype=np.int64),
        stamp_id=np.zeros(1, dtype=np.int64), queue=np.zeros(num_cells, dtype=np.int32),
    )  # fmt: skip


@njit(cache=True)
def bounded_bfs(
    obstacles,  # (H, W) uint8, 1 = obstacle
    goal_row,  # int
    goal_col,  # int
    row,  # int, the agent's cell
    col,  # int
    bound,  # int, cells with distance + Manhattan distance to the agent above it are left out
    search,  # Search, written under a new stamp id
):
    """Breadth-first distances from the goal over the cells within `bound`; stops when the agent's cell is
    reached. Returns REACHED, PRUNED (not reached, some cell left out) or EXHAUSTED (not reachable)."""
    height, width = obstacles.shape
    distance, stamp, stamp_id, queue = search
    stamp_id[0] += 1
    goal = goal_row * width + goal_col
    stamp[goal] = stamp_id[0]
    distance[goal] = 0
    queue[0] = goal
    head, tail = 0, 1
    pruned = False
    while head < tail:
        here = queue[head]
        head += 1
        here_row, here_col = here // width, here % width
        if here_row == row and here_col == col:
            return REACHED
        next_distance = distance[here] + 1
        for k in range(4):
            r, c = here_row + ROW_STEPS[k], here_col + COL_STEPS[k]
            if not (0 <= r < height and 0 <= c < width) or obstacles[r, c] != 0:
                continue
            cell = r * width + c
            if stamp[cell] == stamp_id[0]:
                continue
            if next_distance + abs(r - row) + abs(c - col) > bound:
                pruned = True
                continue
            stamp[cell] = stamp_id[0]
            distance[cell] = next_distance
            queue[tail] = cell
            tail += 1
    return PRUNED if pruned else EXHAUSTED


@njit(cache=True)
def search_distance(
    obstacles,  # (H, W) uint8
    goal_row,  # int
    goal_col,  # int
    row,  # int, the agent's cell
    col,  # int
    search,  # Search, holds the bounded field of the goal on return
):
    """The agent's shortest-path distance to the goal (-1 if unreachable), searching with a growing bound;
    the last bounded field stays in `search` for `walk_downhill`."""
    if obstacles[goal_row, goal_col] != 0:
        return -1
    manhattan = abs(goal_row - row) + abs(goal_col - col)
    slack = 0
    while True:
        outcome = bounded_bfs(obstacles, goal_row, goal_col, row, col, manhattan + slack, search)
        if outcome == REACHED:
            return search.distance[row * obstacles.shape[1] + col]
        if outcome == EXHAUSTED:
            return -1
        slack = 2 * slack + 2


@njit(cache=True)
def splitmix64(state):  # state: (1,) uint64, advanced
    """The next 64-bit output of a SplitMix64 stream (small, fast, and good enough for tie-breaking)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def walk_downhill(
    search,  # Search, the field of the agent's goal (`search_distance` reached the agent)
    height,  # int, the map's height
    width,  # int, the map's width (flat cells)
    row,  # int, the agent's cell
    col,  # int
    rng_state,  # (1,) uint64, advanced once per move
    moves,  # (d,) int8, written: the path's moves 1..4
):
    """Draw a shortest path from the agent down the searched field, uniformly among downhill moves."""
    distance, stamp, stamp_id = search.distance, search.stamp, search.stamp_id
    candidates = np.empty(4, dtype=np.int64)
    for step in range(moves.shape[0]):
        downhill = distance[row * width + col] - 1
        count = 0
        for k in range(4):
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if not (0 <= r < height and 0 <= c < width):
                continue
            cell = r * width + c
            if stamp[cell] == stamp_id[0] and distance[cell] == downhill:
                candidates[count] = k
                count += 1
        k = candidates[splitmix64(rng_state) % np.uint64(count)]
        moves[step] = k + 1
        row, col = row + ROW_STEPS[k], col + COL_STEPS[k]


@njit(cache=True)
def still_on_plan(
    plans,  # Plans, the agent's cursor and cell advanced if it made its planned move
    env,  # int
    agent,  # int
    row,  # int, the agent's cell now
    col,  # int
    goal_row,  # int, its goal now
    goal_col,  # int
):
    """Whether the agent's plan still leads it to its goal: same goal, and the agent stands on the plan's
    cell (its last move was blocked) or one planned move further (it made the move)."""
    if plans.goal[env, agent, 0] != goal_row or plans.goal[env, agent, 1] != goal_col:
        return False
    plan_row, plan_col = plans.cell[env, agent, 0], plans.cell[env, agent, 1]
    if row == plan_row and col == plan_col:
        return True
    cursor = plans.cursor[env, agent]
    if cursor >= plans.length[env, agent]:
        return False
    k = plans.pool[plans.start[env, agent] + cursor] - 1
    if row != plan_row + ROW_STEPS[k] or col != plan_col + COL_STEPS[k]:
        return False
    plans.cursor[env, agent] = cursor + 1
    plans.cell[env, agent, 0], plans.cell[env, agent, 1] = row, col
    return True


@njit(cache=True)
def plan_agent(
    plans,  # Plans, the agent's plan written
    search,  # Search scratch
    obstacles,  # (H, W) uint8, the agent's map
    env,  # int
    agent,  # int
    row,  # int, the agent's cell
    col,  # int
    goal_row,  # int
    goal_col,  # int
    rng_state,  # (1,) uint64
):
    """Plan a shortest path for the agent into the pool; returns False (nothing changed, `plans.request`
    set) when the pool has no room for it."""
    moves = max(search_distance(obstacles, goal_row, goal_col, row, col, search), 0)
    start = plans.used[0]
    if start + moves > plans.pool.shape[0]:
        plans.request[0] = moves
        return False
    height, width = obstacles.shape
    walk_downhill(search, height, width, row, col, rng_state, plans.pool[start : start + moves])
    plans.used[0] = start + moves
    plans.goal[env, agent, 0], plans.goal[env, agent, 1] = goal_row, goal_col
    plans.cell[env, agent, 0], plans.cell[env, agent, 1] = row, col
    plans.start[env, agent] = start
    plans.length[env, agent] = moves
    plans.cursor[env, agent] = 0
    return True


@njit(cache=True)
def compact_pool(
    plans,  # Plans, start/length/cursor rewritten for `pool`
    pool,  # (P',) int8, written: the unfollowed moves of every plan, packed from 0
):
    """Move every plan's remaining moves into `pool`; returns the entries used."""
    used = 0
    for env in range(plans.start.shape[0]):
        for agent in range(plans.start.shape[1]):
            first = plans.start[env, agent] + plans.cursor[env, agent]
            remaining = plans.length[env, agent] - plans.cursor[env, agent]
            pool[used : used + remaining] = plans.pool[first : first + remaining]
            plans.start[env, agent] = used
            plans.length[env, agent] = remaining
            plans.cursor[env, agent] = 0
            used += remaining
    return used


@njit(cache=True)
def forget_changed_maps(
    obstacles,  # (E, H, W) uint8, the maps now
    known_obstacles,  # (E, H, W) uint8, the maps the plans were made on; updated
    plans,  # Plans, the plans of changed environments dropped
):
    """Drop the plans of every environment whose obstacle map changed since they were made."""
    for env in range(obstacles.shape[0]):
        if np.array_equal(obstacles[env], known_obstacles[env]):
            continue
        known_obstacles[env] = obstacles[env]
        plans.goal[env] = -1
        plans.length[env] = 0
        plans.cursor[env] = 0
