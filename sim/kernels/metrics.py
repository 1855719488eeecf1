"""POGEMA 1.4.0's episode metrics (`pogema/wrappers/metrics.py`) as counters updated once per step.

POGEMA's wrappers keep their own 0-based step counter and emit on every step where the episode is
"finished" (all truncated or all terminated), then restart their counters: so continuing after the end
emits again at every step. Buffers (one environment): was_on_goal (N,) bool; solve_time (N,) int64, -1 for
POGEMA's None; counters (2,) int64 = [metric step, arrivals]; values (METRIC_SLOTS,) float64 out, in the
order of METRIC_KEYS for the environment's on_target.
"""

from __future__ import annotations

from numba import njit

from sim.kernels.dynamics import FINISH, NOTHING

METRIC_KEYS = {
    "finish": ("ISR", "CSR", "ep_length"),
    "nothing": ("ISR", "CSR", "ep_length", "SoC", "makespan"),
    "restart": ("avg_throughput",),
}
METRIC_SLOTS = max(len(keys) for keys in METRIC_KEYS.values())
"""Length of an environment's metric values: room for the longest key tuple."""


@njit(cache=True)
def _finish_metrics(was_on_goal, solve_time, counters, finished, values):
    """ISR, CSR (arrivals over the episode) and ep_length (mean first-arrival step + 1)."""
    num_agents = was_on_goal.shape[0]
    step = counters[0]
    for i in range(num_agents):
        counters[1] += was_on_goal[i]
        if solve_time[i] < 0 and (was_on_goal[i] or finished):
            solve_time[i] = step
    if finished:
        values[0] = counters[1] / num_agents
        values[1] = 1.0 if counters[1] == num_agents else 0.0
        values[2] = solve_time.sum() / num_agents + 1
        counters[1] = 0
        solve_time[:] = -1


@njit(cache=True)
def _nothing_metrics(was_on_goal, solve_time, counters, finished, values):
    """ISR, CSR at the final step, ep_length, and SoC / makespan from the step each agent settled on goal."""
    num_agents = was_on_goal.shape[0]
    step = counters[0]
    on_goal_now = 0
    for i in range(num_agents):
        on_goal_now += was_on_goal[i]
        if solve_time[i] < 0 and (was_on_goal[i] or finished):
            solve_time[i] = step
        if not was_on_goal[i] and not finished:
            solve_time[i] = -1
    if finished:
        values[0] = on_goal_now / num_agents
        values[1] = 1.0 if on_goal_now == num_agents else 0.0
        values[2] = step + 1
        values[3] = solve_time.sum() + num_agents
        values[4] = solve_time.max() + 1
        solve_time[:] = -1


@njit(cache=True)
def _restart_metrics(was_on_goal, counters, finished, max_episode_steps, values):
    """avg_throughput: arrivals over the episode / max_episode_steps."""
    for i in range(was_on_goal.shape[0]):
        counters[1] += was_on_goal[i]
    if finished:
        values[0] = counters[1] / max_episode_steps
        counters[1] = 0


@njit(cache=True)
def update_metrics(on_target, was_on_goal, solve_time, counters, finished, max_episode_steps, values):
    """One step of the metric wrappers of `on_target` (FINISH / NOTHING / RESTART)."""
    if on_target == FINISH:
        _finish_metrics(was_on_goal, solve_time, counters, finished, values)
    elif on_target == NOTHING:
        _nothing_metrics(was_on_goal, solve_time, counters, finished, values)
    else:
        _restart_metrics(was_on_goal, counters, finished, max_episode_steps, values)
    counters[0] = 0 if finished else counters[0] + 1
