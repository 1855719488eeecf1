"""Reward schemes: POGEMA's own, and the SRMT paper's shaping (Sagirova et al. 2025, Table 2), c = step_cost.

| scheme               | goal reward (POGEMA's) | moved along a shortest path | any other step          |
|----------------------|------------------------|-----------------------------|-------------------------|
| pogema, sparse       | +1                     | 0                           | 0                       |
| dense                | +1                     | -c                          | -c                      |
| directional          | +1                     | +c/2                        | 0                       |
| directional_negative | +1                     | -c/2                        | -c                      |
| moving_negative      | +1                     | -c                          | -c (move), -c/2 (stay)  |

"Goal reward" is whatever POGEMA's dynamics paid this step (1 at arrival in `finish` and `restart`, 1 to all
when everyone is on goal in `nothing`); a step that earns it gets exactly it, no shaping. Agents inactive
before the step get POGEMA's reward (0) and no shaping.

"Moved along a shortest path" replaces SRMT's A* path (whose tie-breaking picks one of many shortest paths):
the agent changed cell and its distance to its goal (BFS over the static map, other agents ignored) dropped,
which on a 4-grid means by exactly one; so *any* shortest-path move counts. Goals only change on a step that
pays the goal reward, so the distances before and after the step are to the same goal whenever shaping
applies.
Moving-negative reads the chosen action (SRMT's rule), not the actual displacement.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scenarios.schema import RewardScheme, RewardSpec
from sim.distance import DistanceCache

SCHEMES: tuple[RewardScheme, ...] = (
    "pogema",
    "sparse",
    "dense",
    "directional",
    "directional_negative",
    "moving_negative",
)
"""Scheme names in the order of their kernel codes (the index is what `shape_rewards` takes)."""

_DENSE, _DIRECTIONAL, _DIRECTIONAL_NEGATIVE, _MOVING_NEGATIVE = 2, 3, 4, 5


def scheme_code(scheme: str) -> int:
    """The kernel code of a scheme name; ValueError naming the known ones otherwise."""
    if scheme not in SCHEMES:
        raise ValueError(f"reward scheme {scheme!r} is unknown; expected one of {', '.join(SCHEMES)}")
    return SCHEMES.index(scheme)


@njit(cache=True)
def shape_rewards(
    scheme,  # int, an index into SCHEMES
    step_cost,  # float, the paper's c
    goal_rewards,  # (E, N) float32, POGEMA's rewards of this step
    actions,  # (E, N) integer, the chosen actions
    moved,  # (E, N) bool, the agent changed cell this step
    distance_before,  # (E, N) int32, distance to goal before the step (read only by directional schemes)
    distance_after,  # (E, N) int32, distance to the same goal after the step
    was_active,  # (E, N) bool, active before the step
    out,  # (E, N) float32, written (may be goal_rewards itself)
):
    """Write the scheme's reward for every agent (table in the module docstring)."""
    for env in range(out.shape[0]):
        for agent in range(out.shape[1]):
            reward = goal_rewards[env, agent]
            if reward > 0 or not was_active[env, agent] or scheme < _DENSE:
                out[env, agent] = reward
                continue
            along_path = moved[env, agent] and distance_after[env, agent] < distance_before[env, agent]
            if scheme == _DENSE:
                reward = -step_cost
            elif scheme == _DIRECTIONAL:
                reward = step_cost / 2 if along_path else 0.0
            elif scheme == _DIRECTIONAL_NEGATIVE:
                reward = -step_cost / 2 if along_path else -step_cost
            else:  # _MOVING_NEGATIVE
                reward = -step_cost if actions[env, agent] != 0 else -step_cost / 2
            out[env, agent] = reward


class RewardShaper:
    """Applies a scenario's reward scheme around one `GridEnv` step (the seam the env calls).

    Call `before_step(positions, goals, active)` with the state the actions act on, then
    `shape(goal_rewards, actions, positions, goals, out)` with the state after the step.
    Distances come from `distances` (shared with other users of the env's fields) and are computed only for
    the directional schemes.
    """

    def __init__(self, spec: RewardSpec, distances: DistanceCache, num_envs: int, num_agents: int) -> None:
        self.scheme = scheme_code(spec.scheme)
        self.step_cost = float(spec.step_cost)
        self.uses_distances = spec.scheme in ("directional", "directional_negative")
        self.distances = distances
        shape = (num_envs, num_agents)
        self._positions_before = np.zeros((*shape, 2), dtype=np.int32)
        self._was_active = np.zeros(shape, dtype=bool)
        self._moved = np.zeros(shape, dtype=bool)
        self._distance_before = np.zeros(shape, dtype=np.int32)
        self._distance_after = np.zeros(shape, dtype=np.int32)

    def before_step(self, positions: np.ndarray, goals: np.ndarray, active: np.ndarray) -> None:
        """Remember the pre-step state: positions, active mask and (directional schemes) distances."""
        self._positions_before[...] = positions
        self._was_active[...] = active
        if self.uses_distances:
            self.distances.distance_to_goal(positions, goals, out=self._distance_before)

    def shape(
        self, goal_rewards: np.ndarray, actions: np.ndarray, positions: np.ndarray, goals: np.ndarray,
        out: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """Write the scheme's (E, N) float32 rewards into `out` (may be `goal_rewards`) and return it."""
        np.any(positions != self._positions_before, axis=-1, out=self._moved)
        if self.uses_distances:
            self.distances.distance_to_goal(positions, goals, out=self._distance_after)
        shape_rewards(
            self.scheme, self.step_cost, goal_rewards, actions, self._moved, self._distance_before,
            self._distance_after, self._was_active, out,
        )  # fmt: skip
        return out
