"""PIBT kernels: one conflict-free joint move per step for every environment of a batch.

Priority Inheritance with Backtracking (Okumura, Machida, Défago, Tamura, "Priority inheritance with
backtracking for iterative multi-agent path finding", Artificial Intelligence 310, 2022). Agents are
visited in decreasing priority; an agent without a reserved next cell runs PIBT(agent):

    candidates = its free neighbours and its own cell, by distance to its goal, ties broken (`RULE_TIES`)
    for each candidate v: skip v if it is reserved for the next step, or if the agent standing on v has
    already chosen to move into our cell (a swap); reserve v; if an agent b stands on v and has no
    reservation yet, run PIBT(b) with b inheriting our priority; if that fails, try the next candidate.
    If none works, stay and report failure to the caller, which backtracks.

Move preferences (`preferences`, (E, N, 5) float32 by action, owned by the caller; RULE_PREFERENCES)
come before the distance: an agent tries the move it prefers most first, and equal preferences keep the
distance order, so all-equal preferences are plain PIBT. This is how a learned policy's action
probabilities order PIBT's candidates in CS-PIBT (Veerapaneni, Wang, Li, Likhachev, "Improving Learnt Local
MAPF Policies with Heuristic Search", ICAPS 2024; Veerapaneni et al., "Work Smarter Not Harder: Simple
Imitation Learning with CS-PIBT Outperforms Large Scale Imitation Learning for MAPF", arXiv:2409.14491):
PIBT keeps the joint move free of conflicts whatever the order (`marl.guided` feeds a trained policy's
preferences).

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
    RULE_PREFERENCES  1: candidates ordered by the move preferences first (below); 0: they are not read

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

The scratch buffers and the per-environment view are in sim/planners/buffers.py, the swap technique in
swap.py, the dynamic priorities in priorities.py.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS, UNREACHABLE
from sim.planners.buffers import env_view, uniform01
from sim.planners.swap import prepare_swap

RULE_FOLLOW, RULE_SWAP, RULE_UNDO, RULE_TIES, RULE_PREFER_FREE, RULE_PREFERENCES = range(6)
NUM_RULES = 6
FOLLOW_ANY, FOLLOW_LOWER, FOLLOW_NONE = 0, 1, 2
FOLLOW_RULES = {"soft": FOLLOW_ANY, "priority": FOLLOW_LOWER, "block_both": FOLLOW_NONE}
TIES_RANDOM, TIES_FIXED = 0, 1

_NONE, _SUCCESS, _FAILURE = 0, 1, 2


@njit(cache=True, inline="always")
def can_follow(follower, leader, follow_rule):
    """Whether `follower` may enter the cell `leader` leaves in the same step."""
    if follow_rule == FOLLOW_ANY:
        return True
    if follow_rule == FOLLOW_LOWER:
        return leader < follower
    return False


@njit(cache=True, inline="always")
def _sort_candidates(
    agent,  # int
    cell,  # int, the agent's flat cell
    view,  # EnvView
    rules,  # (NUM_RULES,) int64
    buffers,  # PlanBuffers
    rng_state,  # (1,) uint64
):
    """Writes the agent's candidates (free neighbours and its own cell) best first; returns their count.
    Best first: under RULE_PREFERENCES the higher move preference (`view.preferences`, by action), then
    the shorter distance, then the tie-break (`RULE_TIES`, `RULE_PREFER_FREE`); equal preferences leave the
    distance order as it is."""
    map_width = view.grid.shape[1]
    row, col = cell // map_width, cell % map_width
    keys, ranks = buffers.keys, buffers.ranks
    guided = rules[RULE_PREFERENCES] != 0
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
        if guided:  # insertion sort, stable: preference first, then distance and tie-break
            rank = -np.float64(view.preferences[agent, (k + 1) % 5])  # candidate k is action k + 1, stay 0
            while position > 0 and (
                ranks[position - 1] > rank or (ranks[position - 1] == rank and keys[position - 1] > key)
            ):
                keys[position] = keys[position - 1]
                ranks[position] = ranks[position - 1]
                out[position] = out[position - 1]
                position -= 1
            ranks[position] = rank
        else:  # insertion sort, stable: distance and tie-break (plain PIBT)
            while position > 0 and keys[position - 1] > key:
                keys[position] = keys[position - 1]
                out[position] = out[position - 1]
                position -= 1
        keys[position] = key
        out[position] = here
        count += 1
    return count


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
        prepare_swap(root, cells, goals, view, buffers)
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
                prepare_swap(child, cells, goals, view, buffers)
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
    preferences,  # (E, N, 5) float32, move preferences by action (higher tried first; all equal: plain PIBT)
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
        view = env_view(obstacles, map_shapes, windows, preferences, env)
        plan_env(
            positions[env], goals[env], active[env], view, priorities[env], rules, buffers, cells, rng_state,
            actions[env], planned[env],
        )  # fmt: skip
