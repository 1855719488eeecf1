"""Heuristic baseline policies over a batched env: uniform random actions and shortest-path greedy.

Both read only the env's live state arrays (`positions`, `goals`, `active`, `obstacles`, `num_envs`,
`num_agents`), so they work on a `GridEnv` or anything exposing the same arrays.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numba import njit

from sim.distance import COL_STEPS, ROW_STEPS, UNREACHABLE, DistanceCache, ensure_field

NUM_ACTIONS = 5


class BatchedState(Protocol):
    """The live state a baseline reads (a `GridEnv` provides it)."""

    num_envs: int
    num_agents: int
    positions: np.ndarray  # (E, N, 2) int32
    goals: np.ndarray  # (E, N, 2) int32
    active: np.ndarray  # (E, N) bool
    obstacles: np.ndarray  # (E, H, W) uint8


def random_actions(env: BatchedState, rng: np.random.Generator) -> np.ndarray:
    """Uniform actions in 0..4 for every agent, (E, N) int64."""
    return rng.integers(0, NUM_ACTIONS, size=(env.num_envs, env.num_agents))


@njit(cache=True)
def splitmix64(state):  # state: (1,) uint64, advanced
    """The next 64-bit output of a SplitMix64 stream (small, fast, and good enough for tie-breaking)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def downhill_action(
    field,  # (H, W) int32, distance field of the agent's goal
    row,  # int, the agent's cell
    col,  # int
    rng_state,  # (1,) uint64
):
    """A uniformly random move that lowers the distance to the goal; 0 (stay) on it or if unreachable."""
    height, width = field.shape
    here = field[row, col]
    if here == 0 or here == UNREACHABLE:
        return 0
    candidates = np.empty(4, dtype=np.int64)
    count = 0
    for k in range(4):
        r, c = row + ROW_STEPS[k], col + COL_STEPS[k]
        if 0 <= r < height and 0 <= c < width and field[r, c] == here - 1:
            candidates[count] = k + 1
            count += 1
    return candidates[splitmix64(rng_state) % np.uint64(count)]


@njit(cache=True)
def greedy_actions(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    obstacles,  # (E, H, W) uint8
    cache,  # sim.distance.CacheArrays, updated
    rng_state,  # (1,) uint64
    out,  # (E, N) int64, written
):
    """Every active agent steps down its goal's distance field; inactive agents stay."""
    for env in range(out.shape[0]):
        for agent in range(out.shape[1]):
            out[env, agent] = 0
            if not active[env, agent]:
                continue
            slot = ensure_field(env, goals[env, agent, 0], goals[env, agent, 1], obstacles, cache)
            row, col = positions[env, agent, 0], positions[env, agent, 1]
            out[env, agent] = downhill_action(cache.fields[slot], row, col, rng_state)


class GreedyPolicy:
    """Shortest-path greedy: each active agent takes a random one of the moves that lower its BFS distance to
    its goal (static map, other agents ignored), and stays on its goal or when the goal is unreachable.

    `distances` lets the policy share the env's distance-field cache; by default it keeps its own over
    `env.obstacles`, built on the first call (so the policy may be made before `env.reset()`). `seed` fixes
    the tie-breaking stream.
    """

    def __init__(
        self, env: BatchedState, seed: int | None = None, distances: DistanceCache | None = None
    ) -> None:
        self.env = env
        self.distances = distances
        self._own_cache = distances is None
        entropy = np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)
        self._rng_state = np.array(entropy, dtype=np.uint64)
        self._actions = np.zeros((env.num_envs, env.num_agents), dtype=np.int64)

    def __call__(self) -> np.ndarray:
        """Actions (E, N) int64 for the env's current state (a buffer reused by the next call)."""
        env = self.env
        if self._own_cache and (self.distances is None or self.distances.obstacles is not env.obstacles):
            self.distances = DistanceCache(env.obstacles)  # first call, or the env reallocated its maps
        self.distances.refresh()
        greedy_actions(
            env.positions, env.goals, env.active, self.distances.obstacles, self.distances.arrays,
            self._rng_state, self._actions,
        )  # fmt: skip
        return self._actions
