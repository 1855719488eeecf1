"""Windowed PIBT with large neighbourhood search: plan every agent's next W steps, improve them, execute
the first step (after WPPL, Jiang et al., "Scaling Lifelong Multi-Agent Path Finding to More Realistic
Settings: Research Challenges and Opportunities", SoCS 2024, the League of Robot Runners 2023 winner).

Each call, per environment:
1. PIBT is rolled forward W steps from the current state (its priorities advanced as the real ones would
   be, goals held fixed), giving every agent a W-step path free of vertex and swap conflicts.
2. An agent's cost is the step it first stands on its goal, or W plus its distance to the goal from where
   its path ends. Large neighbourhood search lowers the sum: `iterations` times, a neighbourhood of up
   to `neighbourhood` agents (an agent drawn among the delayed ones, weighted by delay, and the agents
   standing nearest to it) drops its paths, which are planned again one by one, in random order, by a
   space-time A* against everyone else's paths (the cost above, waiting allowed, an agent that reaches
   its goal must be able to rest there to the end of the window); the new paths are kept if their summed
   cost is not higher, else the old ones come back.
3. The first step of every path is the joint move.
Moves obey the same entry rule as PIBT (`pibt.can_follow`, from the collision system), so the joint move
is executed exactly. Goals that appear after an arrival are unknown to the planner, which therefore lets
an arrived agent rest on its goal for the rest of the window.

Buffers (`WindowBuffers`, W window steps, N agents, H x W map buffer, cells flat):
    paths     (N, W + 1) int32   each agent's cell at every window step
    reserved  (W + 1, H * W) int32  the agent standing on a cell at a step, -1
    cost      (N,) int64
    backup    (N, W + 1) int32   the neighbourhood's previous paths
    members   (N,) int64         the neighbourhood
    closed    ((W + 1) * H * W,) int64  A* node stamps; parent ((W + 1) * H * W,) int32
    stamp     (1,) int64         the current A* stamp
    positions (N, 2) int32, priorities (N,) float64, planned (N, 2) int32, actions (N,) int64: rollout scratch
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np
from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS, UNREACHABLE
from sim.paths import splitmix64
from sim.planners.buffers import env_view, uniform01
from sim.planners.fields import gather_near, window_distance
from sim.planners.pibt import can_follow, plan_env, write_move


class WindowBuffers(NamedTuple):
    """Windowed-search state and scratch (module docstring); kernels take it whole."""

    paths: np.ndarray
    reserved: np.ndarray
    cost: np.ndarray
    backup: np.ndarray
    members: np.ndarray
    closed: np.ndarray
    parent: np.ndarray
    stamp: np.ndarray
    positions: np.ndarray
    priorities: np.ndarray
    planned: np.ndarray
    actions: np.ndarray


def new_window_buffers(num_agents: int, map_shape: tuple[int, int], window: int) -> WindowBuffers:
    cells = map_shape[0] * map_shape[1]
    return WindowBuffers(
        paths=np.zeros((num_agents, window + 1), dtype=np.int32),
        reserved=np.full((window + 1, cells), -1, dtype=np.int32),
        cost=np.zeros(num_agents, dtype=np.int64),
        backup=np.zeros((num_agents, window + 1), dtype=np.int32),
        members=np.zeros(num_agents, dtype=np.int64),
        closed=np.zeros((window + 1) * cells, dtype=np.int64),
        parent=np.zeros((window + 1) * cells, dtype=np.int32),
        stamp=np.zeros(1, dtype=np.int64),
        positions=np.zeros((num_agents, 2), dtype=np.int32),
        priorities=np.zeros(num_agents, dtype=np.float64),
        planned=np.zeros((num_agents, 2), dtype=np.int32),
        actions=np.zeros(num_agents, dtype=np.int64),
    )


@njit(cache=True)
def _h(view, agent, cell):
    """The agent's distance to its goal from flat `cell` (whole-map windows)."""
    map_width = view.grid.shape[1]
    return window_distance(
        view.values[agent], view.origin[agent], view.base[agent], cell // map_width, cell % map_width
    )


@njit(cache=True)
def path_cost(path, goal, view, agent):
    """First window step on the goal, else the window length plus the distance left from the path's end."""
    window = path.shape[0] - 1
    for t in range(window + 1):
        if path[t] == goal:
            return t
    return window + _h(view, agent, path[window])


@njit(cache=True)
def _reserve_path(reserved, path, agent, value):
    """Mark (value = agent) or clear (value = -1) an agent's path in the reservation table."""
    for t in range(path.shape[0]):
        if reserved[t, path[t]] == (agent if value < 0 else -1):
            reserved[t, path[t]] = value


@njit(cache=True)
def _goal_free_from(reserved, goal, t):
    """Whether nobody stands on the goal from window step t to the end."""
    free = True
    for later in range(t, reserved.shape[0]):
        free = free and reserved[later, goal] < 0
    return free


@njit(cache=True)
def space_time_astar(
    agent,  # int
    start,  # int, flat cell at window step 0
    goal,  # int, flat cell
    view,  # pibt.EnvView with whole-map windows
    follow_rule,  # int, pibt.FOLLOW_*
    buffers,  # WindowBuffers: reserved holds everyone else; closed/parent/stamp scratch
    rng_state,  # (1,) uint64, breaks ties between equal f
    path,  # (W + 1,) int32, written
):
    """The cheapest path (module docstring's cost) that keeps clear of the reserved ones; returns its
    cost, or -1 if every path collides (the caller keeps the old one)."""
    reserved = buffers.reserved
    window = reserved.shape[0] - 1
    cells = reserved.shape[1]
    map_width = view.grid.shape[1]
    buffers.stamp[0] += 1
    stamp = buffers.stamp[0]
    closed, parent = buffers.closed, buffers.parent
    if reserved[0, start] >= 0 and reserved[0, start] != agent:
        return -1
    start_h = _h(view, agent, start)
    heap = [(float(start_h), 0.0, np.int64(start))]
    parent[start] = -1
    found = -1
    found_cost = -1
    while heap:
        f, _, node = heapq.heappop(heap)
        if closed[node] == stamp:
            continue
        closed[node] = stamp
        t, cell = node // cells, node % cells
        if cell == goal and _goal_free_from(reserved, goal, t):
            found, found_cost = node, t
            break
        if t == window:
            found, found_cost = node, int(f)
            break
        row, col = cell // map_width, cell % map_width
        for k in range(5):
            if k < 4:
                r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
                if r < 0 or r >= view.height or c < 0 or c >= view.width or view.grid[r, c] != 0:
                    continue
                following = r * map_width + c
            else:
                following = cell
            if reserved[t + 1, following] >= 0:
                continue
            holder = reserved[t, following]
            if holder >= 0 and following != cell:
                if reserved[t + 1, cell] == holder:
                    continue  # a swap
                if not can_follow(agent, holder, follow_rule):
                    continue
            if t + 1 < window:
                follower = reserved[t + 2, following]
                if follower >= 0 and follower != agent and not can_follow(follower, agent, follow_rule):
                    continue  # whoever enters that cell after us may not follow us
            child = (t + 1) * cells + following
            if closed[child] == stamp:
                continue
            h = _h(view, agent, following)
            if h >= UNREACHABLE:
                continue
            parent[child] = node
            # deeper nodes first among equal f, then a random order
            heapq.heappush(heap, (float(t + 1 + h), -(t + 1) - 0.5 * uniform01(rng_state), child))
    if found < 0:
        return -1
    node = found
    t_end = node // cells
    for t in range(t_end + 1, window + 1):
        path[t] = goal if found_cost == t_end and node % cells == goal else node % cells
    while node != -1:
        path[node // cells] = node % cells
        node = parent[node]
    return found_cost


@njit(cache=True)
def _rollout(
    positions, goals, active, view, priorities, ties, rules, pibt_buffers, cells, rng_state, buffers
):
    """PIBT rolled forward over the window from the current state: every active agent's initial path. The
    rolled positions move on, so the distances PIBT ranks by are read from the windows at each step."""
    window = buffers.paths.shape[1] - 1
    map_width = view.grid.shape[1]
    buffers.positions[:] = positions
    buffers.priorities[:] = priorities
    for agent in range(positions.shape[0]):
        buffers.paths[agent, 0] = positions[agent, 0] * map_width + positions[agent, 1]
    for t in range(1, window + 1):
        if t > 1:
            for agent in range(positions.shape[0]):
                if active[agent]:
                    gather_near(
                        view.grid, view.height, view.width, view.values[agent], view.origin[agent],
                        view.base[agent], buffers.positions[agent, 0], buffers.positions[agent, 1],
                        view.near[agent],
                    )  # fmt: skip
        plan_env(
            buffers.positions, goals, active, view, buffers.priorities, rules, pibt_buffers, cells, rng_state,
            buffers.actions, buffers.planned,
        )  # fmt: skip
        for agent in range(positions.shape[0]):
            buffers.positions[agent] = buffers.planned[agent]
            buffers.paths[agent, t] = buffers.planned[agent, 0] * map_width + buffers.planned[agent, 1]
            on_goal = (
                buffers.planned[agent, 0] == goals[agent, 0] and buffers.planned[agent, 1] == goals[agent, 1]
            )
            buffers.priorities[agent] = ties[agent] if on_goal else buffers.priorities[agent] + 1.0
    for agent in range(positions.shape[0]):  # back to the real positions' distances
        if active[agent]:
            gather_near(
                view.grid, view.height, view.width, view.values[agent], view.origin[agent], view.base[agent],
                positions[agent, 0], positions[agent, 1], view.near[agent],
            )  # fmt: skip


@njit(cache=True)
def _neighbourhood(positions, active, cost, floor, size, rng_state, members):
    """An agent drawn with weight 1 + its delay, and the active agents standing nearest to it."""
    num_agents = positions.shape[0]
    total = 0.0
    for agent in range(num_agents):
        if active[agent]:
            total += 1.0 + max(cost[agent] - floor[agent], 0)
    pick = uniform01(rng_state) * total
    seed = -1
    for agent in range(num_agents):
        if active[agent]:
            seed = agent
            pick -= 1.0 + max(cost[agent] - floor[agent], 0)
            if pick < 0:
                break
    members[0] = seed
    count = 1
    while count < size:  # nearest first, by repeated selection (neighbourhoods are small)
        best, best_distance = -1, 1 << 30
        for agent in range(num_agents):
            if not active[agent]:
                continue
            taken = False
            for k in range(count):
                if members[k] == agent:
                    taken = True
                    break
            if taken:
                continue
            distance = abs(positions[agent, 0] - positions[seed, 0]) + abs(
                positions[agent, 1] - positions[seed, 1]
            )
            if distance < best_distance:
                best, best_distance = agent, distance
        if best < 0:
            break
        members[count] = best
        count += 1
    return count


@njit(cache=True)
def plan_window_env(
    positions,  # (N, 2) int32
    goals,  # (N, 2) int32
    active,  # (N,) bool
    view,  # pibt.EnvView with whole-map windows
    priorities,  # (N,) float64
    ties,  # (N,) float64
    rules,  # (NUM_RULES,) int64, PIBT's rules for the rollout (and its entry rule)
    pibt_buffers,  # pibt.PlanBuffers
    cells,  # (N,) int64 scratch
    rng_state,  # (1,) uint64
    buffers,  # WindowBuffers
    iterations,  # int
    neighbourhood,  # int
    actions,  # (N,) int64, written
    planned,  # (N, 2) int32, written
):
    """One windowed step for one environment (module docstring)."""
    num_agents = positions.shape[0]
    map_width = view.grid.shape[1]
    follow_rule = rules[0]
    _rollout(positions, goals, active, view, priorities, ties, rules, pibt_buffers, cells, rng_state, buffers)
    floor = np.zeros(num_agents, dtype=np.int64)
    for agent in range(num_agents):
        if not active[agent]:
            continue
        goal = goals[agent, 0] * map_width + goals[agent, 1]
        buffers.cost[agent] = path_cost(buffers.paths[agent], goal, view, agent)
        floor[agent] = _h(view, agent, buffers.paths[agent, 0])
        _reserve_path(buffers.reserved, buffers.paths[agent], agent, agent)
    members = buffers.members
    for _ in range(iterations):
        count = _neighbourhood(positions, active, buffers.cost, floor, neighbourhood, rng_state, members)
        before = 0
        for k in range(count):
            agent = members[k]
            before += buffers.cost[agent]
            buffers.backup[agent] = buffers.paths[agent]
            _reserve_path(buffers.reserved, buffers.paths[agent], agent, -1)
        for k in range(count - 1, 0, -1):  # random order
            j = int(splitmix64(rng_state) % np.uint64(k + 1))
            members[k], members[j] = members[j], members[k]
        after = 0
        placed = 0
        for k in range(count):
            agent = members[k]
            goal = goals[agent, 0] * map_width + goals[agent, 1]
            cost = space_time_astar(
                agent,
                buffers.paths[agent, 0],
                goal,
                view,
                follow_rule,
                buffers,
                rng_state,
                buffers.paths[agent],
            )
            if cost < 0:
                break
            after += cost
            placed += 1
            _reserve_path(buffers.reserved, buffers.paths[agent], agent, agent)
        if placed == count and after <= before:
            for k in range(count):
                agent = members[k]
                goal = goals[agent, 0] * map_width + goals[agent, 1]
                buffers.cost[agent] = path_cost(buffers.paths[agent], goal, view, agent)
            continue
        for k in range(placed):  # worse, or someone found no path: the old paths come back
            _reserve_path(buffers.reserved, buffers.paths[members[k]], members[k], -1)
        for k in range(count):
            agent = members[k]
            buffers.paths[agent] = buffers.backup[agent]
            _reserve_path(buffers.reserved, buffers.paths[agent], agent, agent)
    for agent in range(num_agents):
        actions[agent] = 0
        planned[agent] = positions[agent]
        if not active[agent]:
            continue
        _reserve_path(buffers.reserved, buffers.paths[agent], agent, -1)
        write_move(agent, buffers.paths[agent, 1], map_width, actions, planned)


@njit(cache=True)
def plan_window_envs(
    positions,
    goals,
    active,
    obstacles,
    map_shapes,
    windows,
    preferences,
    priorities,
    ties,
    rules,
    pibt_buffers,
    cells,
    rng_state,
    buffers,
    iterations,
    neighbourhood,
    actions,
    planned,
):
    """`plan_window_env` for every environment (arguments batched over E as in pibt.plan_envs)."""
    for env in range(positions.shape[0]):
        view = env_view(obstacles, map_shapes, windows, preferences, env)
        plan_window_env(
            positions[env], goals[env], active[env], view, priorities[env], ties[env], rules, pibt_buffers,
            cells, rng_state, buffers, iterations, neighbourhood, actions[env], planned[env],
        )  # fmt: skip
