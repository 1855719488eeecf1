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

from sim.kernels.dynamics import (
    BLOCK_BOTH,
    FINISH,
    MOVES,
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
def _move(e, rules, obstacles, occupancy, scratch, next_mover, moving, queue, positions, actions, active):
    """rules (4,) int64 = [collision system, on_target, pad, pogema_bugs]."""
    if rules[0] == PRIORITY:
        move_priority(obstacles[e], occupancy[e], positions[e], actions[e], active[e], rules[2])
    elif rules[0] == BLOCK_BOTH:
        move_block_both(
            obstacles[e], occupancy[e], scratch[0, e], positions[e], actions[e], active[e], rules[2]
        )
    else:
        move_soft(
            obstacles[e],
            occupancy[e],
            scratch[0, e],
            scratch[1, e],
            next_mover[e],
            moving[e],
            queue[e],
            positions[e],
            actions[e],
            active[e],
            rules[2],
            rules[3] != 0,
        )


STATE_FIELDS = (
    "max_episode_steps", "channels", "obstacles", "occupancy", "scratch", "next_mover", "moving", "queue",
    "positions", "goals", "actions", "active", "was_on_goal", "rewards", "terminated", "truncated", "elapsed",
    "finished", "goal_mode", "streams", "labels", "comp_cells", "comp_offset", "goal_list", "num_listed",
    "sequences", "sequence_length", "sequence_index", "solve_time", "counters", "metric_values", "obs",
    "observed_at",
)  # fmt: skip
"""The order of the buffers in the `state` tuple the step kernels take (module docstring for each)."""
ACTIONS, FINISHED = STATE_FIELDS.index("actions"), STATE_FIELDS.index("finished")


@njit(cache=True)
def step_env(e, rules, state):
    """Advances environment e by one step. rules (4,) int64; state: the buffers in `STATE_FIELDS` order,
    with max_episode_steps (E,) int64 and channels (3,) int64 (obs channel of obstacles, agents, goal,
    -1 = absent)."""
    (
        max_episode_steps, channels, obstacles, occupancy, scratch, next_mover, moving, queue, positions,
        goals, actions, active, was_on_goal, rewards, terminated, truncated, elapsed, finished, goal_mode,
        streams, labels, comp_cells, comp_offset, goal_list, num_listed, sequences, sequence_length,
        sequence_index, solve_time, counters, metric_values, obs, observed_at,
    ) = state  # fmt: skip
    pad = rules[2]
    _move(e, rules, obstacles, occupancy, scratch, next_mover, moving, queue, positions, actions, active)
    if rules[1] == FINISH:
        settle_finish(
            occupancy[e], positions[e], goals[e], active[e], was_on_goal[e], rewards[e], terminated[e], pad
        )
    elif rules[1] == NOTHING:
        settle_nothing(positions[e], goals[e], was_on_goal[e], rewards[e], terminated[e])
    else:
        settle_restart(
            positions[e], goals[e], was_on_goal[e], rewards[e], terminated[e], goal_mode[e], streams[e],
            labels[e], comp_cells[e], comp_offset[e], goal_list[e], num_listed[e], sequences[e],
            sequence_length[e], sequence_index[e], pad,
        )  # fmt: skip
    elapsed[e] += 1
    truncated[e, :] = elapsed[e] >= max_episode_steps[e]
    finished[e] = truncated[e, 0] or terminated[e].all()
    update_metrics(
        rules[1], was_on_goal[e], solve_time[e], counters[e], finished[e], max_episode_steps[e],
        metric_values[e],
    )  # fmt: skip
    observe(
        obs[e], obstacles[e], occupancy[e], positions[e], goals[e], observed_at[e], pad, channels[0],
        channels[1], channels[2],
    )  # fmt: skip


@njit(cache=True, parallel=True)
def step_envs(rules, state, actions):
    """Takes actions (E, N), any integer dtype, and advances every environment by one step, environments
    across numba's threads. Returns how many environments finished their episode (so the caller skips the
    search for them on most steps), or -(k + 1) with nothing stepped if flat action k is out of range."""
    bad = copy_actions(state[ACTIONS], actions, len(MOVES))
    if bad >= 0:
        return -(bad + 1)
    for e in prange(state[0].shape[0]):
        step_env(e, rules, state)
    return state[FINISHED].sum()


@njit(cache=True)
def step_envs_serial(rules, state, actions):
    """`step_envs` on the calling thread: without the thread pool's launch cost, for one thread or env."""
    bad = copy_actions(state[ACTIONS], actions, len(MOVES))
    if bad >= 0:
        return -(bad + 1)
    num_finished = 0
    for e in range(state[0].shape[0]):
        step_env(e, rules, state)
        num_finished += state[FINISHED][e]
    return num_finished
