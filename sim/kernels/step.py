"""One simulator step for a batch of environments: moves, goals and rewards, time limit, metrics and
observations, environment by environment (threads across environments; every environment touches only
its own slices, so results never depend on the thread count).

`state` is a `StepState` (`sim.kernels.state`) of the kernel fields of `sim.state.EnvState`, which lists
their shapes and dtypes; `rules` (4,) int64 = [collision system, on_target, pad = obs radius, pogema_bugs].
"""

from __future__ import annotations

from numba import njit, prange

from sim.actions import NUM_ACTIONS
from sim.kernels.dynamics import (
    BLOCK_BOTH,
    FINISH,
    NOTHING,
    PRIORITY,
    copy_actions,
    move_block_both,
    move_priority,
    move_soft,
    settle_finish,
    settle_nothing,
    settle_restart,
)
from sim.kernels.metrics import update_metrics
from sim.kernels.observe import observe


@njit(cache=True)
def _move(e, rules, state):
    """Moves environment e's agents by the collision system rules[0]."""
    if rules[0] == PRIORITY:
        move_priority(
            state.padded_obstacles[e], state.occupancy[e], state.positions[e], state.actions[e],
            state.active[e], rules[2],
        )  # fmt: skip
    elif rules[0] == BLOCK_BOTH:
        move_block_both(
            state.padded_obstacles[e], state.occupancy[e], state.scratch[0, e], state.positions[e],
            state.actions[e], state.active[e], rules[2],
        )  # fmt: skip
    else:
        move_soft(
            state.padded_obstacles[e], state.occupancy[e], state.scratch[0, e], state.scratch[1, e],
            state.next_mover[e], state.moving[e], state.queue[e], state.positions[e], state.actions[e],
            state.active[e], rules[2], rules[3] != 0,
        )  # fmt: skip


@njit(cache=True)
def step_env(e, rules, state):
    """Advances environment e by one step (rules and state: the module docstring)."""
    pad = rules[2]
    _move(e, rules, state)
    positions, goals, was_on_goal = state.positions[e], state.goals[e], state.was_on_goal[e]
    rewards, terminated = state.rewards[e], state.terminated[e]
    if rules[1] == FINISH:
        settle_finish(
            state.occupancy[e], positions, goals, state.active[e], was_on_goal, rewards, terminated, pad
        )
    elif rules[1] == NOTHING:
        settle_nothing(positions, goals, was_on_goal, rewards, terminated)
    else:
        settle_restart(
            positions, goals, was_on_goal, rewards, terminated, state.goal_mode[e], state.streams[e],
            state.labels[e], state.comp_cells[e], state.comp_offset[e], state.goal_list[e],
            state.num_listed[e], state.sequences[e], state.sequence_length[e], state.sequence_index[e], pad,
        )  # fmt: skip
    state.elapsed[e] += 1
    max_steps = state.max_steps[e]
    state.truncated[e, :] = state.elapsed[e] >= max_steps
    state.finished[e] = state.truncated[e, 0] or terminated.all()
    update_metrics(
        rules[1], was_on_goal, state.solve_time[e], state.counters[e], state.finished[e], max_steps,
        state.metric_values[e],
    )  # fmt: skip
    channels = state.channels
    observe(
        state.obs[e], state.padded_obstacles[e], state.occupancy[e], positions, goals, state.observed_at[e],
        pad, channels[0], channels[1], channels[2],
    )  # fmt: skip


@njit(cache=True, parallel=True)
def step_envs(rules, state, actions):
    """Takes actions (E, N), any integer dtype, and advances every environment by one step, environments
    across numba's threads. Returns how many environments finished their episode (so the caller skips the
    search for them on most steps), or -(k + 1) with nothing stepped if flat action k is out of range."""
    bad = copy_actions(state.actions, actions, NUM_ACTIONS)
    if bad >= 0:
        return -(bad + 1)
    for e in prange(state.finished.shape[0]):
        step_env(e, rules, state)
    return state.finished.sum()


@njit(cache=True)
def step_envs_serial(rules, state, actions):
    """`step_envs` on the calling thread: without the thread pool's launch cost, for one thread or env."""
    bad = copy_actions(state.actions, actions, NUM_ACTIONS)
    if bad >= 0:
        return -(bad + 1)
    num_finished = 0
    for e in range(state.finished.shape[0]):
        step_env(e, rules, state)
        num_finished += state.finished[e]
    return num_finished
