"""LaCAM3's swap technique for PIBT (Okumura, "Engineering LaCAM*: Towards Real-Time, Large-Scale, and
Near-Optimal Multi-Agent Pathfinding", AAMAS 2024), the kernels behind `RULE_SWAP` of sim/planners/pibt.py.

When an agent's best cell is held by an agent that must pass it head-on in a corridor (walking the
corridor brings both closer to their goals and it ends before a side branch), and a side branch further
on lets them pass, the agent takes its worst candidate instead and pulls the other one into its cell.
"""

from __future__ import annotations

from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS
from sim.planners.buffers import agent_distance, free_cell


@njit(cache=True)
def _free_degree(view, cell):
    """Number of free neighbours of flat `cell` and the last of them (flat), for corridor walks."""
    map_width = view.grid.shape[1]
    row, col = cell // map_width, cell % map_width
    count, last = 0, -1
    for k in range(4):
        r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
        if free_cell(view, r, c):
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
        if not free_cell(view, r, c):
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
    while agent_distance(view, pusher, puller_cell) < agent_distance(view, pusher, pusher_cell):
        count, onward = _corridor_step(view, puller_cell, pusher_cell, goals, occupied_now)
        if count >= 2:
            return False
        if count <= 0:
            break
        pusher_cell, puller_cell = puller_cell, onward
    puller_gains = agent_distance(view, puller, pusher_cell) < agent_distance(view, puller, puller_cell)
    pusher_here = agent_distance(view, pusher, pusher_cell)
    pusher_gains = pusher_here == 0 or agent_distance(view, pusher, puller_cell) < pusher_here
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
            if not free_cell(view, r, c):
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


@njit(cache=True)
def prepare_swap(agent, cells, goals, view, buffers):
    """RULE_SWAP: find the agent's swap partner; if there is one, reverse its candidates."""
    partner = _swap_partner(agent, cells, goals, view, buffers)
    if partner >= 0:
        count = buffers.num_candidates[agent]
        buffers.swap_partner[agent] = partner
        buffers.candidates[agent, :count] = buffers.candidates[agent, :count][::-1].copy()
