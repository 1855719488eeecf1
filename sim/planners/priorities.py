"""PIBT's dynamic priorities (Okumura et al., Artificial Intelligence 310, 2022): an agent's priority grows by
one for every step it ends away from its goal and drops back to its tie-breaking value on arrival, so an
agent kept from its goal eventually plans first."""

from __future__ import annotations

from numba import njit

from sim.planners.buffers import uniform01


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
