"""PIBT kernels: one conflict-free joint move per step for every environment of a batch.

Priority Inheritance with Backtracking (Okumura, Machida, Défago, Tamura, "Priority inheritance with
backtracking for iterative multi-agent path finding", Artificial Intelligence 310, 2022). Agents are
visited in decreasing priority; an agent without a reserved next cell runs PIBT(agent):

    candidates = its free neighbours and its own cell, by distance to its goal, ties broken (`RULE_TIES`)
    for each candidate v: skip v if it is reserved for the next step, or if the agent standing on v has
    already chosen to move into our cell (a swap); reserve v; if an agent b stands on v and has no
    reservation yet, run PIBT(b) with b inheriting our priority; if that fails, try the next candidate.
    If none works, stay and report failure to the caller, which backtracks.

The recursion runs on an explicit stack (`_pibt`). Options (`rules`, an int64 array):
    RULE_FOLLOW  what a move may enter, from the environment's collision system (below)
    RULE_SWAP    1: the swap technique of LaCAM3 (Okumura, "Engineering LaCAM*", AAMAS 2024): when the
                 agent's best cell is held by an agent that must pass it head-on in a corridor, the agent
                 takes its worst candidate instead and pulls the other one into its cell
    RULE_UNDO    0: a failed inheritance leaves the failed agents staying (Okumura's PIBT, pibt2, pypibt);
                 1: it undoes every reservation the failed call made, so those agents are still free
                 (pymapf 0.9.0's PIBT)
    RULE_TIES    TIES_RANDOM: equal distances in random order (a fresh uniform key per candidate, as in
                 LaCAM3); TIES_FIXED: in the order up, down, left, right, stay (pymapf's neighbour order
                 with its shuffle left out), so a run is reproducible against another implementation
    RULE_PREFER_FREE  1: among equal distances, cells no agent stands on first (pibt2's tie-break)

Collision systems. The joint moves are free of vertex and swap conflicts by construction. Such a move is
executed as planned by POGEMA's `soft` rule, which lets agents follow each other and rotate in cycles.
`priority` and `block_both` execute fewer moves: `priority` moves agents in ascending index, each only
into a cell that is free at its turn (a follower must have a higher index than its leader, so no cycle
moves), and `block_both` moves an agent only into a cell nobody stands on. So the planner takes the
environment's rule into account (RULE_FOLLOW): FOLLOW_ANY (soft) lets a move enter a cell whose agent
moves away; FOLLOW_LOWER (priority) only when that agent has a lower index; FOLLOW_NONE (block_both)
never. Where a move may not follow, the agent pushes the occupant instead (priority inheritance without
reserving its cell) and waits one step in its own cell while the occupant clears the way. With the
matching rule the environment executes every planned move exactly, under all three systems.

Buffers (`PlanBuffers`, one set reused by every environment of a batch, N agents, H x W map buffer;
cells are flat row * W + col):
    occupied_now   (H * W,) int32   the agent standing on a cell, -1 between calls
    occupied_next  (H * W,) int32   the agent that reserved a cell for the next step, -1 between calls
    next_cell      (N,) int64       reserved cell, -1 while undecided
    candidates     (N, 5) int64     candidate cells, best first
    num_candidates (N,) int64
    tried          (N,) int64       candidates tried so far
    mark           (N,) int64       journal length before the agent's current reservation
    waiting        (N,) bool        the agent stays to push the occupant of its wanted cell
    swap_partner   (N,) int64       the agent to pull into our cell (RULE_SWAP), -1 if none
    stack          (N,) int64       the inheritance chain
    journal        (N,) int64       agents in order of reservation (RULE_UNDO)
    keys           (5,) float64     sort keys scratch
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS, UNREACHABLE
from sim.paths import splitmix64
from sim.planners.fields import window_distance

RULE_FOLLOW, RULE_SWAP, RULE_UNDO, RULE_TIES, RULE_PREFER_FREE = range(5)
NUM_RULES = 5
FOLLOW_ANY, FOLLOW_LOWER, FOLLOW_NONE = 0, 1, 2
FOLLOW_RULES = {"soft": FOLLOW_ANY, "priority": FOLLOW_LOWER, "block_both": FOLLOW_NONE}
TIES_RANDOM, TIES_FIXED = 0, 1

_NONE, _SUCCESS, _FAILURE = 0, 1, 2
_UNIT = 1.0 / 9007199254740992.0  # 2**-53


class PlanBuffers(NamedTuple):
    """The planner's scratch (module docstring); kernels take it whole."""

    occupied_now: np.ndarray
    occupied_next: np.ndarray
    next_cell: np.ndarray
    candidates: np.ndarray
    num_candidates: np.ndarray
    tried: np.ndarray
    mark: np.ndarray
    waiting: np.ndarray
    swap_partner: np.ndarray
    stack: np.ndarray
    journal: np.ndarray
    keys: np.ndarray


class EnvView(NamedTuple):
    """One environment's map and its agents' heuristic, as the kernels read them (views of the batch)."""

    grid: np.ndarray  # (H, W) uint8, the environment's map buffer
    height: int  # the environment's map rows
    width: int  # the environment's map columns
    values: np.ndarray  # (N, S, S) uint16, the agents' windows (sim.planners.fields.Windows)
    origin: np.ndarray  # (N, 2) int32
    base: np.ndarray  # (N,) int64
    near: np.ndarray  # (N, 5) int32


@njit(cache=True)
def env_view(obstacles, map_shapes, windows, env):
    """The EnvView of environment `env` of a batch."""
    return EnvView(
        obstacles[env], map_shapes[env, 0], map_shapes[env, 1], windows.values[env], windows.origin[env],
        windows.base[env], windows.near[env],
    )  # fmt: skip


def new_plan_buffers(num_agents: int, map_shape: tuple[int, int]) -> PlanBuffers:
    """Scratch for N agents over maps of up to `map_shape` cells."""
    cells = map_shape[0] * map_shape[1]
    return PlanBuffers(
        occupied_now=np.full(cells, -1, dtype=np.int32),
        occupied_next=np.full(cells, -1, dtype=np.int32),
        next_cell=np.full(num_agents, -1, dtype=np.int64),
        candidates=np.zeros((num_agents, 5), dtype=np.int64),
        num_candidates=np.zeros(num_agents, dtype=np.int64),
        tried=np.zeros(num_agents, dtype=np.int64),
        mark=np.zeros(num_agents, dtype=np.int64),
        waiting=np.zeros(num_agents, dtype=bool),
        swap_partner=np.full(num_agents, -1, dtype=np.int64),
        stack=np.zeros(num_agents, dtype=np.int64),
        journal=np.zeros(num_agents, dtype=np.int64),
        keys=np.zeros(5, dtype=np.float64),
    )


@njit(cache=True, inline="always")
def uniform01(rng_state):  # rng_state: (1,) uint64, advanced
    """A uniform float64 in [0, 1) from the SplitMix64 stream."""
    return (splitmix64(rng_state) >> np.uint64(11)) * _UNIT


@njit(cache=True, inline="always")
def can_follow(follower, leader, follow_rule):
    """Whether `follower` may enter the cell `leader` leaves in the same step."""
    if follow_rule == FOLLOW_ANY:
        return True
    if follow_rule == FOLLOW_LOWER:
        return leader < follower
    return False


@njit(cache=True, inline="always")
def _distance(view, agent, cell):
    """Agent's distance to its goal from flat `cell` (its window; UNREACHABLE where unknown)."""
    map_width = view.grid.shape[1]
    return window_distance(
        view.values[agent], view.origin[agent], view.base[agent], cell // map_width, cell % map_width
    )


@njit(cache=True, inline="always")
def _free(view, row, col):
    return 0 <= row < view.height and 0 <= col < view.width and view.grid[row, col] == 0


@njit(cache=True, inline="always")
def _sort_candidates(
    agent,  # int
    cell,  # int, the agent's flat cell
    view,  # EnvView
    rules,  # (NUM_RULES,) int64
    buffers,  # PlanBuffers
    rng_state,  # (1,) uint64
):
    """Writes the agent's candidates (free neighbours and its own cell) best first; returns their count."""
    map_width = view.grid.shape[1]
    row, col = cell // map_width, cell % map_width
    keys = buffers.keys
    out = buffers.candidates[agent]
    count = 0
    for k in range(5):
        distance = view.near[agent, k]
        if k < 4 and distance == UNREACHABLE:  # an obstacle, the map's edge, or (never) unknown
            continue
        here = cell if k == 4 else (row + ROW_STEPS[k]) * map_width + col + COL_STEPS[k]
        tie = k / 5.0 if rules[RULE_TIES] == TIES_FIXED else uniform01(rng_state)
        if rules[RULE_PREFER_FREE]:
            holder = buffers.occupied_now[here]
            tie = 0.5 * tie + (0.5 if holder >= 0 and holder != agent else 0.0)
        key = distance + tie
        position = count
        while position > 0 and keys[position - 1] > key:  # insertion sort, stable
            keys[position] = keys[position - 1]
            out[position] = out[position - 1]
            position -= 1
        keys[position] = key
        out[position] = here
        count += 1
    return count


@njit(cache=True)
def _free_degree(view, cell):
    """Number of free neighbours of flat `cell` and the last of them (flat), for corridor walks."""
    map_width = view.grid.shape[1]
    row, col = cell // map_width, cell % map_width
    count, last = 0, -1
    for k in range(4):
        r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
        if _free(view, r, c):
            count += 1
            last = r * map_width + c
    return count, last


@njit(cache=True)
def _corridor_step(view, cell, behind, goals, occupied_now):
    """LaCAM3's corridor test at `cell` coming from `behind`: counts the free neighbours other than
    `behind` and dead ends where an agent rests on its goal; returns (count, the last such neighbour)."""
    map_width = view.grid.shape[1]
    row, col = cell // map_width, cell % map_width
    count, onward = 0, -1
    for k in range(4):
        r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
        if not _free(view, r, c):
            continue
        here = r * map_width + c
        if here == behind:
            continue
        holder = occupied_now[here]
        if holder >= 0 and goals[holder, 0] * map_width + goals[holder, 1] == here:
            degree, _ = _free_degree(view, here)
            if degree == 1:
                continue
        count += 1
        onward = here
    return count, onward


@njit(cache=True)
def _swap_required(pusher, puller, pusher_cell, puller_cell, view, goals, occupied_now):
    """LaCAM3's is_swap_required: walking from the puller's cell along a corridor while that brings the
    pusher closer to its goal, does the corridor end before a side branch lets them pass?"""
    while _distance(view, pusher, puller_cell) < _distance(view, pusher, pusher_cell):
        count, onward = _corridor_step(view, puller_cell, pusher_cell, goals, occupied_now)
        if count >= 2:
            return False
        if count <= 0:
            break
        pusher_cell, puller_cell = puller_cell, onward
    puller_gains = _distance(view, puller, pusher_cell) < _distance(view, puller, puller_cell)
    pusher_here = _distance(view, pusher, pusher_cell)
    pusher_gains = pusher_here == 0 or _distance(view, pusher, puller_cell) < pusher_here
    return puller_gains and pusher_gains


@njit(cache=True)
def _swap_possible(pusher_origin, puller_origin, view, goals, occupied_now):
    """LaCAM3's is_swap_possible: pulling along the corridor, is there a side branch to pass at?"""
    pusher_cell, puller_cell = pusher_origin, puller_origin
    for _ in range(view.grid.size):  # a corridor walk ends long before; the bound only guards the loop
        if puller_cell == pusher_origin:
            return False
        count, onward = _corridor_step(view, puller_cell, pusher_cell, goals, occupied_now)
        if count >= 2:
            return True
        if count <= 0:
            return False
        pusher_cell, puller_cell = puller_cell, onward
    return False


@njit(cache=True)
def _swap_partner(agent, cells, goals, view, buffers):
    """LaCAM3's is_swap_required_and_possible: the agent to swap with, or -1."""
    occupied_now = buffers.occupied_now
    here = cells[agent]
    best = buffers.candidates[agent, 0]
    other = occupied_now[best]
    if (
        other >= 0
        and other != agent
        and buffers.next_cell[other] < 0
        and _swap_required(agent, other, here, cells[other], view, goals, occupied_now)
        and _swap_possible(cells[other], here, view, goals, occupied_now)
    ):
        return other
    if best != here:  # clearing the way, as in push and swap
        map_width = view.grid.shape[1]
        row, col = here // map_width, here % map_width
        for k in range(4):
            r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
            if not _free(view, r, c):
                continue
            neighbour = occupied_now[r * map_width + c]
            if (
                neighbour >= 0
                and best != cells[neighbour]
                and _swap_required(neighbour, agent, here, best, view, goals, occupied_now)
                and _swap_possible(best, here, view, goals, occupied_now)
            ):
                return neighbour
    return -1


@njit(cache=True, inline="always")
def _swaps(agent, holder, here, next_cell):
    """Whether moving into the holder's cell would swap places with it: it already chose our cell."""
    return holder >= 0 and holder != agent and next_cell[holder] == here


@njit(cache=True, inline="always")
def _reserve(agent, cell, buffers, journal_length, undo):
    """Reserve `cell` for `agent` (journalled when failed calls are undone); returns the journal length."""
    buffers.occupied_next[cell] = agent
    buffers.next_cell[agent] = cell
    if not undo:
        return journal_length
    buffers.journal[journal_length] = agent
    return journal_length + 1


@njit(cache=True)
def _rollback(buffers, journal_length, mark):
    """Undo every reservation made since the journal had `mark` entries; returns `mark`."""
    for position in range(journal_length - 1, mark - 1, -1):
        agent = buffers.journal[position]
        cell = buffers.next_cell[agent]
        if cell >= 0 and buffers.occupied_next[cell] == agent:
            buffers.occupied_next[cell] = -1
        buffers.next_cell[agent] = -1
    return mark


@njit(cache=True, inline="always")
def _enter(agent, cells, view, rules, buffers, rng_state):
    """Prepare an agent's frame: its sorted candidates."""
    buffers.num_candidates[agent] = _sort_candidates(agent, cells[agent], view, rules, buffers, rng_state)
    buffers.tried[agent] = 0
    buffers.waiting[agent] = False
    buffers.swap_partner[agent] = -1


@njit(cache=True)
def _prepare_swap(agent, cells, goals, view, buffers):
    """RULE_SWAP: find the agent's swap partner; if there is one, reverse its candidates."""
    partner = _swap_partner(agent, cells, goals, view, buffers)
    if partner >= 0:
        count = buffers.num_candidates[agent]
        buffers.swap_partner[agent] = partner
        buffers.candidates[agent, :count] = buffers.candidates[agent, :count][::-1].copy()


@njit(cache=True, inline="always")
def _pibt(root, cells, goals, view, rules, buffers, rng_state, journal_length):
    """PIBT(root) with priority inheritance and backtracking on an explicit stack; returns the journal
    length after it."""
    follow_rule = rules[RULE_FOLLOW]
    undo = rules[RULE_UNDO] != 0
    occupied_now, occupied_next, next_cell = buffers.occupied_now, buffers.occupied_next, buffers.next_cell
    stack = buffers.stack
    depth = 0
    swap = rules[RULE_SWAP] != 0
    stack[0] = root
    _enter(root, cells, view, rules, buffers, rng_state)
    if swap:
        _prepare_swap(root, cells, goals, view, buffers)
    result = _NONE  # outcome of the frame just popped, for the frame below it
    while depth >= 0:
        agent = stack[depth]
        here = cells[agent]
        if result == _SUCCESS and buffers.waiting[agent]:
            pushed = occupied_now[buffers.candidates[agent, buffers.tried[agent] - 1]]
            if next_cell[pushed] == cells[pushed]:  # it waits too: the cell does not clear this step
                if undo:
                    journal_length = _rollback(buffers, journal_length, buffers.mark[agent])
                else:
                    occupied_next[here] = -1
                    next_cell[agent] = -1
                result = _NONE
        if result == _FAILURE:  # the agent we pushed could not move
            if undo:
                journal_length = _rollback(buffers, journal_length, buffers.mark[agent])
            elif buffers.waiting[agent] and occupied_next[here] == agent:
                occupied_next[here] = -1
                next_cell[agent] = -1
            result = _NONE
        child = -1
        if result == _NONE:
            while buffers.tried[agent] < buffers.num_candidates[agent]:
                cell = buffers.candidates[agent, buffers.tried[agent]]
                buffers.tried[agent] += 1
                if occupied_next[cell] >= 0:
                    continue
                holder = occupied_now[cell]
                if _swaps(agent, holder, here, next_cell):
                    continue
                buffers.mark[agent] = journal_length
                if holder >= 0 and holder != agent and not can_follow(agent, holder, follow_rule):
                    if next_cell[holder] >= 0 or occupied_next[here] >= 0:
                        continue  # its cell stays blocked for this step, or we may not wait here
                    journal_length = _reserve(agent, here, buffers, journal_length, undo)
                    buffers.waiting[agent] = True
                    child = holder
                    break
                journal_length = _reserve(agent, cell, buffers, journal_length, undo)
                buffers.waiting[agent] = False
                if holder >= 0 and holder != agent and next_cell[holder] < 0:
                    child = holder
                    break
                result = _SUCCESS
                break
        if child >= 0:
            depth += 1
            stack[depth] = child
            _enter(child, cells, view, rules, buffers, rng_state)
            if swap:
                _prepare_swap(child, cells, goals, view, buffers)
            continue
        if result == _SUCCESS:
            partner = buffers.swap_partner[agent]
            if (
                partner >= 0
                and buffers.tried[agent] == 1
                and not buffers.waiting[agent]
                and next_cell[partner] < 0
                and occupied_next[here] < 0
                and can_follow(partner, agent, follow_rule)
            ):
                journal_length = _reserve(partner, here, buffers, journal_length, undo)
        else:  # every candidate failed: stay (undo mode: stay undecided), report failure
            if not undo:
                occupied_next[here] = agent
                next_cell[agent] = here
            result = _FAILURE
        depth -= 1
    return journal_length


@njit(cache=True, inline="always")
def write_move(
    agent,  # int
    target,  # int, the flat cell the agent moves to (its own cell: stay)
    map_width,  # int, the map buffer's columns
    actions,  # (N,) int64, written: 0 stay, 1 up, 2 down, 3 left, 4 right
    planned,  # (N, 2) int32, holding the agent's cell; written: the target's (row, col)
):
    """Record the agent's move to a neighbouring (or its own) cell as an action and a planned cell."""
    d_row = target // map_width - planned[agent, 0]
    d_col = target % map_width - planned[agent, 1]
    planned[agent, 0] += d_row
    planned[agent, 1] += d_col
    actions[agent] = 0
    for k in range(4):
        if ROW_STEPS[k] == d_row and COL_STEPS[k] == d_col:
            actions[agent] = k + 1


@njit(cache=True)
def plan_env(
    positions,  # (N, 2) int32
    goals,  # (N, 2) int32
    active,  # (N,) bool
    view,  # EnvView of the environment
    priorities,  # (N,) float64, higher plans first
    rules,  # (NUM_RULES,) int64
    buffers,  # PlanBuffers scratch, left clean
    cells,  # (N,) int64 scratch: flat cells
    rng_state,  # (1,) uint64, advanced
    actions,  # (N,) int64, written: 0 stay, 1 up, 2 down, 3 left, 4 right
    planned,  # (N, 2) int32, written: the cell each agent is to stand on after the step
):
    """One PIBT step for one environment; inactive agents stay and block nobody."""
    map_width = view.grid.shape[1]
    num_agents = positions.shape[0]
    for agent in range(num_agents):
        cells[agent] = positions[agent, 0] * map_width + positions[agent, 1]
        buffers.next_cell[agent] = -1
        if active[agent]:
            buffers.occupied_now[cells[agent]] = agent
    order = np.argsort(-priorities)  # distinct tie values make equal priorities (practically) absent
    journal_length = 0
    for agent in order:
        if active[agent] and buffers.next_cell[agent] < 0:
            journal_length = _pibt(agent, cells, goals, view, rules, buffers, rng_state, journal_length)
    for agent in range(num_agents):
        actions[agent] = 0
        planned[agent, 0], planned[agent, 1] = positions[agent, 0], positions[agent, 1]
        if not active[agent]:
            continue
        target = buffers.next_cell[agent]
        if target < 0:  # only a root whose every candidate failed under RULE_UNDO: it stays
            target = cells[agent]
        buffers.occupied_now[cells[agent]] = -1
        buffers.occupied_next[target] = -1
        write_move(agent, target, map_width, actions, planned)


@njit(cache=True)
def plan_envs(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    obstacles,  # (E, H, W) uint8
    map_shapes,  # (E, 2) int32
    windows,  # sim.planners.fields.Windows
    priorities,  # (E, N) float64
    rules,  # (NUM_RULES,) int64
    buffers,  # PlanBuffers
    cells,  # (N,) int64 scratch
    rng_state,  # (1,) uint64
    actions,  # (E, N) int64, written
    planned,  # (E, N, 2) int32, written
):
    """One PIBT step for every environment (`plan_env`)."""
    for env in range(positions.shape[0]):
        view = env_view(obstacles, map_shapes, windows, env)
        plan_env(
            positions[env], goals[env], active[env], view, priorities[env], rules, buffers, cells, rng_state,
            actions[env], planned[env],
        )  # fmt: skip


@njit(cache=True)
def update_priorities(
    positions,  # (E, N, 2) int32, after the last step
    goals,  # (E, N, 2) int32, now
    elapsed,  # (E,) int64, the environments' step counters now
    seen_elapsed,  # (E,) int64, the counters at the last update (-1: never); updated
    seen_goals,  # (E, N, 2) int32, the goals at the last update; updated
    ties,  # (E, N) float64, per-agent tie-breaking values in [0, 1); redrawn at a restart
    tie_rule,  # int, 0: uniform draws, 1: agent index / (N + 1)
    priorities,  # (E, N) float64, updated
    rng_state,  # (1,) uint64
):
    """PIBT's dynamic priorities: +1 for every step an agent ends away from the goal it was heading to, back
    to its tie value on arrival. An environment seen again at the same step keeps its priorities; one
    whose counter did not advance by exactly one (a new episode, a restored snapshot, skipped steps)
    restarts from the tie values. Returns how many environments restarted."""
    restarted = 0
    num_envs, num_agents = priorities.shape
    for env in range(num_envs):
        if seen_elapsed[env] >= 0 and elapsed[env] == seen_elapsed[env]:
            continue
        if seen_elapsed[env] >= 0 and elapsed[env] == seen_elapsed[env] + 1:
            for agent in range(num_agents):
                arrived = (
                    positions[env, agent, 0] == seen_goals[env, agent, 0]
                    and positions[env, agent, 1] == seen_goals[env, agent, 1]
                )
                priorities[env, agent] = ties[env, agent] if arrived else priorities[env, agent] + 1.0
        else:
            restarted += 1
            for agent in range(num_agents):
                ties[env, agent] = uniform01(rng_state) if tie_rule == 0 else agent / (num_agents + 1.0)
                priorities[env, agent] = ties[env, agent]
        seen_elapsed[env] = elapsed[env]
        seen_goals[env] = goals[env]
    return restarted
