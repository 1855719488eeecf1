"""One simulator step for a batch of environments: moves, goals and rewards, time limit, metrics and
observations, environment by environment (threads across environments; every environment touches only
its own slices, so results never depend on the thread count).

Batched buffers (E environments, N agents, padded grids (Hp, Wp), unpadded map bounds (Hm, Wm)):
    obstacles, occupancy (E, Hp, Wp) uint8
    scratch   (2, E, Hp, Wp) int32: cell_agent and cell_head of `dynamics`, -1 between calls
    positions, goals (E, N, 2) int32; actions (E, N) int64; active, was_on_goal, terminated, truncated,
    moving (E, N) bool; rewards (E, N) float32; next_mover (E, N) int32; queue (E, 2N) int64
    elapsed (E,) int64; finished (E,) bool
    goal state: goal_mode (E,) int64; streams (E, N, STREAM_WORDS) uint64; labels (E, Hm, Wm) int32;
    comp_cells (E, Hm*Wm) int64; comp_offset (E, Hm*Wm + 1) int64; goal_list (E, L, 2) int64;
    num_listed (E,) int64; sequences (E, N, S, 2) int64; sequence_length (E, N) int64;
    sequence_index (E, N) int64
    metrics: solve_time (E, N) int64; counters (E, 2) int64; metric_values (E, 5) float64
    obs (E, N, C, F, F) float32, or uint8 (every channel holds only 0 and 1); observed_at (E, N, 3) int32
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
    """rules (4,) int64 = [collision system, on_target, pad, pogema_bugs]; state: a `StepState`."""
    if rules[0] == PRIORITY:
        move_priority(
            state.obstacles[e], state.occupancy[e], state.positions[e], state.actions[e], state.active[e],
            rules[2],
        )  # fmt: skip
    elif rules[0] == BLOCK_BOTH:
        move_block_both(
            state.obstacles[e], state.occupancy[e], state.scratch[0, e], state.positions[e], state.actions[e],
            state.active[e], rules[2],
        )  # fmt: skip
    else:
        move_soft(
            state.obstacles[e], state.occupancy[e], state.scratch[0, e], state.scratch[1, e],
            state.next_mover[e], state.moving[e], state.queue[e], state.positions[e], state.actions[e],
            state.active[e], rules[2], rules[3] != 0,
        )  # fmt: skip


@njit(cache=True)
def step_env(e, rules, state):
    """Advances environment e by one step. rules (4,) int64; state: a `StepState` of the buffers above,
    with max_episode_steps (E,) int64 and channels (3,) int64 (obs channel of obstacles, agents, goal,
    -1 = absent)."""
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
    max_steps = state.max_episode_steps[e]
    state.truncated[e, :] = state.elapsed[e] >= max_steps
    state.finished[e] = state.truncated[e, 0] or terminated.all()
    update_metrics(
        rules[1], was_on_goal, state.solve_time[e], state.counters[e], state.finished[e], max_steps,
        state.metric_values[e],
    )  # fmt: skip
    channels = state.channels
    observe(
        state.obs[e], state.obstacles[e], state.occupancy[e], positions, goals, state.observed_at[e], pad,
        channels[0], channels[1], channels[2],
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
