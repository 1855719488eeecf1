"""Dynamics kernels for one environment: POGEMA 1.4.0's collision systems, then goals and rewards.

Buffers (one environment; grids padded by `pad` = obs radius, a ring of obstacles around the map):
    obstacles  (Hp, Wp) uint8, 1 = obstacle
    occupancy  (Hp, Wp) uint8, POGEMA's agent map (with `pogema_bugs` its soft-mode marks can go missing)
    cell_agent (Hp, Wp) int32 scratch, -1 everywhere between calls
    cell_head  (Hp, Wp) int32 scratch, -1 everywhere between calls
    positions, goals (N, 2) int32, unpadded (row, col)
    actions    (N,) int64 in 0..4
    active     (N,) bool
"""

from __future__ import annotations

from numba import njit

from sim.actions import MOVES
from sim.kernels.tasks import (
    GOALS_FROM_COMPONENT,
    GOALS_FROM_LIST,
    draw_component_goal,
    draw_listed_goal,
)

PRIORITY, BLOCK_BOTH, SOFT = 0, 1, 2
FINISH, NOTHING, RESTART = 0, 1, 2
COLLISION_SYSTEMS = {"priority": PRIORITY, "block_both": BLOCK_BOTH, "soft": SOFT}
ON_TARGET = {"finish": FINISH, "nothing": NOTHING, "restart": RESTART}


@njit(cache=True)
def copy_actions(copied, original, num_actions):
    """copied (E, N) int64 <- original (E, N), any integer dtype; returns the flat index of the first
    action outside 0..num_actions-1, or -1. A value the cast changes (e.g. 2**64 - 1 -> -1) counts as
    outside."""
    for k in range(copied.size):
        copied.flat[k] = original.flat[k]
        if copied.flat[k] < 0 or copied.flat[k] >= num_actions or copied.flat[k] != original.flat[k]:
            return k
    return -1


@njit(cache=True)
def move_priority(obstacles, occupancy, positions, actions, active, pad):
    """Sequential in ascending index: an agent moves iff its target is free in the current occupancy."""
    for i in range(positions.shape[0]):
        if not active[i]:
            continue
        row, col = positions[i, 0] + pad, positions[i, 1] + pad
        t_row, t_col = row + MOVES[actions[i], 0], col + MOVES[actions[i], 1]
        if obstacles[t_row, t_col] == 0 and occupancy[t_row, t_col] == 0:
            occupancy[row, col] = 0
            occupancy[t_row, t_col] = 1
            positions[i, 0] += MOVES[actions[i], 0]
            positions[i, 1] += MOVES[actions[i], 1]


@njit(cache=True)
def move_block_both(obstacles, occupancy, cell_agent, positions, actions, active, pad):
    """An agent moves iff no active agent stands on its target and no other targets it (order-free).
    cell_agent serves as a claim counter over its -1 baseline: +1 per target, +2 per occupied cell, so
    exactly one target claim and no occupant reads 0."""
    for i in range(positions.shape[0]):
        if active[i]:
            row, col = positions[i, 0] + pad, positions[i, 1] + pad
            cell_agent[row + MOVES[actions[i], 0], col + MOVES[actions[i], 1]] += 1
            cell_agent[row, col] += 2
    for i in range(positions.shape[0]):
        if active[i]:
            row, col = positions[i, 0] + pad, positions[i, 1] + pad
            t_row, t_col = row + MOVES[actions[i], 0], col + MOVES[actions[i], 1]
            if (
                cell_agent[t_row, t_col] == 0
                and obstacles[t_row, t_col] == 0
                and occupancy[t_row, t_col] == 0
            ):
                occupancy[row, col] = 0
                occupancy[t_row, t_col] = 1
                positions[i, 0] += MOVES[actions[i], 0]
                positions[i, 1] += MOVES[actions[i], 1]
    for i in range(positions.shape[0]):
        row, col = positions[i, 0] + pad, positions[i, 1] + pad
        cell_agent[row, col] = -1
        cell_agent[row - MOVES[actions[i], 0], col - MOVES[actions[i], 1]] = -1
        cell_agent[row + MOVES[actions[i], 0], col + MOVES[actions[i], 1]] = -1


@njit(cache=True)
def _soft_intents(obstacles, cell_agent, cell_head, next_mover, moving, positions, actions, active, pad):
    """Marks who may move before conflicts: active, not staying, target not an obstacle, and not half of a
    swap (both agents of a swap stop). Files every mover in its target cell's list."""
    for i in range(positions.shape[0]):
        moving[i] = False
        if active[i]:
            cell_agent[positions[i, 0] + pad, positions[i, 1] + pad] = i
    for i in range(positions.shape[0]):
        if not active[i] or actions[i] == 0:
            continue
        t_row = positions[i, 0] + pad + MOVES[actions[i], 0]
        t_col = positions[i, 1] + pad + MOVES[actions[i], 1]
        if obstacles[t_row, t_col] != 0:
            continue
        j = cell_agent[t_row, t_col]
        if (
            j >= 0
            and actions[j] != 0
            and positions[j, 0] + MOVES[actions[j], 0] == positions[i, 0]
            and positions[j, 1] + MOVES[actions[j], 1] == positions[i, 1]
        ):
            continue
        moving[i] = True
        next_mover[i] = cell_head[t_row, t_col]
        cell_head[t_row, t_col] = i


@njit(cache=True)
def _soft_settle(cell_agent, cell_head, next_mover, moving, queue, positions, actions, pad):
    """Settles vertex conflicts to the fixed point: movers into a cell held by a stayer stop; of several
    movers into a free cell only the lowest index goes on; every stopped mover becomes a stayer in its
    own cell, which can stop others in cascade. The outcome does not depend on the processing order."""
    tail = 0
    for i in range(positions.shape[0]):
        if moving[i]:
            queue[tail] = i
            tail += 1
    head = 0
    while head < tail:
        i = queue[head]
        head += 1
        row = positions[i, 0] + pad + MOVES[actions[i], 0]
        col = positions[i, 1] + pad + MOVES[actions[i], 1]
        holder = cell_agent[row, col]
        held = holder >= 0 and not moving[holder]
        winner = -1
        k = cell_head[row, col]
        while k >= 0:
            if moving[k] and (winner < 0 or k < winner):
                winner = k
            k = next_mover[k]
        k = cell_head[row, col]
        while k >= 0:
            if moving[k] and (held or k != winner):
                moving[k] = False
                # k now holds its own cell: the movers into that cell must be checked again.
                j = cell_head[positions[k, 0] + pad, positions[k, 1] + pad]
                if j >= 0:
                    queue[tail] = j
                    tail += 1
            k = next_mover[k]


@njit(cache=True)
def move_soft(
    obstacles,
    occupancy,
    cell_agent,
    cell_head,
    next_mover,
    moving,
    queue,
    positions,
    actions,
    active,
    pad,
    pogema_bugs,
):
    """POGEMA's soft collisions: following chains and rotations move, swaps never, vertex conflicts go to
    the lowest index, blocked agents block in cascade. next_mover (N,) int32, moving (N,) bool and
    queue (2N,) int64 are scratch. With pogema_bugs the occupancy is written like POGEMA 1.4.0 (clear the
    old cell, mark the new one, agent by agent), which loses the mark of a follower whose leader has a
    higher index; otherwise it is exactly the set of active cells."""
    _soft_intents(obstacles, cell_agent, cell_head, next_mover, moving, positions, actions, active, pad)
    _soft_settle(cell_agent, cell_head, next_mover, moving, queue, positions, actions, pad)
    for i in range(positions.shape[0]):
        row, col = positions[i, 0] + pad, positions[i, 1] + pad
        cell_agent[row, col] = -1
        cell_head[row + MOVES[actions[i], 0], col + MOVES[actions[i], 1]] = -1
        if active[i]:
            occupancy[row, col] = 0
            if moving[i]:
                positions[i, 0] += MOVES[actions[i], 0]
                positions[i, 1] += MOVES[actions[i], 1]
            if pogema_bugs:
                occupancy[positions[i, 0] + pad, positions[i, 1] + pad] = 1
    if not pogema_bugs:
        for i in range(positions.shape[0]):
            if active[i]:
                occupancy[positions[i, 0] + pad, positions[i, 1] + pad] = 1


@njit(cache=True)
def settle_finish(occupancy, positions, goals, active, was_on_goal, rewards, terminated, pad):
    """on_target 'finish': reward 1 at arrival, then the agent is hidden (inactive, cleared from the
    occupancy) and stays terminated while it stands on its goal."""
    for i in range(positions.shape[0]):
        on_goal = positions[i, 0] == goals[i, 0] and positions[i, 1] == goals[i, 1]
        was_on_goal[i] = on_goal and active[i]
        rewards[i] = 1.0 if was_on_goal[i] else 0.0
        terminated[i] = on_goal
        if was_on_goal[i]:
            occupancy[positions[i, 0] + pad, positions[i, 1] + pad] = 0
            active[i] = False


@njit(cache=True)
def settle_nothing(positions, goals, was_on_goal, rewards, terminated):
    """on_target 'nothing': a shared reward of 1 and termination only when all agents stand on goal."""
    solved = True
    for i in range(positions.shape[0]):
        was_on_goal[i] = positions[i, 0] == goals[i, 0] and positions[i, 1] == goals[i, 1]
        solved = solved and was_on_goal[i]
    rewards[:] = 1.0 if solved else 0.0
    terminated[:] = solved


@njit(cache=True)
def settle_restart(
    positions,
    goals,
    was_on_goal,
    rewards,
    terminated,
    goal_mode,
    streams,
    labels,
    comp_cells,
    comp_offset,
    goal_list,
    num_listed,
    sequences,
    sequence_length,
    sequence_index,
    pad,
):
    """on_target 'restart' (lifelong): reward 1 per arrival and a new goal in the same step, drawn from
    the agent's own stream (component cells or the possible-goals list) or the next of its fixed sequence.
    streams (N, STREAM_WORDS) uint64; labels (Hm, Wm) int32; goal_list (L, 2) int64;
    sequences (N, S, 2) int64; sequence_length, sequence_index (N,) int64."""
    width = labels.shape[1]
    terminated[:] = False
    for i in range(positions.shape[0]):
        was_on_goal[i] = positions[i, 0] == goals[i, 0] and positions[i, 1] == goals[i, 1]
        rewards[i] = 1.0 if was_on_goal[i] else 0.0
        if not was_on_goal[i]:
            continue
        if goal_mode == GOALS_FROM_COMPONENT:
            cell = draw_component_goal(
                streams[i], labels, comp_cells, comp_offset, positions[i, 0], positions[i, 1]
            )
            goals[i, 0], goals[i, 1] = divmod(cell, width)
        elif goal_mode == GOALS_FROM_LIST:
            index = draw_listed_goal(streams[i], goal_list, num_listed, positions[i, 0], positions[i, 1], pad)
            goals[i, 0], goals[i, 1] = goal_list[index, 0], goal_list[index, 1]
        else:
            sequence_index[i] = (sequence_index[i] + 1) % sequence_length[i]
            goals[i, 0], goals[i, 1] = sequences[i, sequence_index[i], 0], sequences[i, sequence_index[i], 1]
