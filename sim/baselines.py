"""Heuristic baseline policies over a batched env: uniform random actions and shortest-path greedy.

Both read only the env's live state arrays (`positions`, `goals`, `active`, `obstacles`, `num_envs`,
`num_agents`), so they work on a `GridEnv` or anything exposing the same arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numba import njit

from sim import policy_names
from sim.actions import NUM_ACTIONS
from sim.paths import compact_pool, forget_changed_maps, new_plans, new_search, plan_agent, still_on_plan
from sim.policy_names import PLANNERS, POLICIES  # the names, kept here for the callers of make_baseline
from sim.seeds import tie_break_state

_MIN_POOL = 1 << 16


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
def greedy_actions(
    positions,  # (E, N, 2) int32
    goals,  # (E, N, 2) int32
    active,  # (E, N) bool
    obstacles,  # (E, H, W) uint8
    plans,  # sim.paths.Plans, updated
    search,  # sim.paths.Search scratch
    rng_state,  # (1,) uint64
    first,  # int, the flat agent index (env * N + agent) to start from
    out,  # (E, N) int64, written from `first` on
):
    """Every active agent makes the next move of its shortest-path plan, planning anew when its goal changed
    or it left the plan; inactive agents, agents on their goal and agents with unreachable goals stay.
    Returns -1, or the flat index of the agent whose new plan did not fit the pool (grow it, call again)."""
    num_envs, num_agents = out.shape
    for flat in range(first, num_envs * num_agents):
        env, agent = flat // num_agents, flat % num_agents
        out[env, agent] = 0
        if not active[env, agent]:
            continue
        row, col = positions[env, agent, 0], positions[env, agent, 1]
        goal_row, goal_col = goals[env, agent, 0], goals[env, agent, 1]
        on_plan = still_on_plan(plans, env, agent, row, col, goal_row, goal_col)
        if not on_plan and not plan_agent(
            plans, search, obstacles[env], env, agent, row, col, goal_row, goal_col, rng_state
        ):
            return flat
        cursor = plans.cursor[env, agent]
        if cursor < plans.length[env, agent]:
            out[env, agent] = plans.pool[plans.start[env, agent] + cursor]
    return -1


class GreedyPolicy:
    """Shortest-path greedy: each active agent follows a shortest path to its goal (static map, other agents
    ignored), and stays on its goal or when the goal is unreachable.

    Each agent plans one path per goal change (`sim.paths`: a search bounded near the agent-goal rectangle,
    ties broken uniformly at random among the downhill moves at every cell, from the `seed`ed stream) and
    keeps it while it follows it; an agent blocked by others stays on its plan, one that left it (a new
    episode, another map) plans again. Memory: the search scratch (16 bytes per map cell) and a move pool
    of about one byte per remaining planned move. The state is built on the first call (so the policy may
    be made before `env.reset()`).
    """

    def __init__(self, env: BatchedState, seed: int | None = None) -> None:
        self.env = env
        self._rng_state = tie_break_state(seed)
        self._actions = np.zeros((env.num_envs, env.num_agents), dtype=np.int64)
        self._known_obstacles = np.zeros((0, 0, 0), dtype=np.uint8)
        self._plans = new_plans(env.num_envs, env.num_agents, _MIN_POOL)
        self._search = new_search(0)

    def __call__(self) -> np.ndarray:
        """Actions (E, N) int64 for the env's current state (a buffer reused by the next call)."""
        env = self.env
        obstacles = env.obstacles
        if obstacles.shape != self._known_obstacles.shape:  # first call, or the env reallocated its maps
            self._known_obstacles = np.full_like(obstacles, 2)  # 2 never equals a real map
            self._plans = new_plans(env.num_envs, env.num_agents, self._plans.pool.shape[0])
            self._search = new_search(obstacles.shape[1] * obstacles.shape[2])
        forget_changed_maps(obstacles, self._known_obstacles, self._plans)
        first = 0
        while True:
            first = greedy_actions(
                env.positions, env.goals, env.active, obstacles, self._plans, self._search, self._rng_state,
                first, self._actions,
            )  # fmt: skip
            if first < 0:
                return self._actions
            self._grow_pool()

    def _grow_pool(self) -> None:
        """Packs the plans' remaining moves into a pool with room for twice them and the pending plan."""
        plans = self._plans
        remaining = int((plans.length - plans.cursor).sum())
        pool = np.zeros(max(_MIN_POOL, 2 * (remaining + int(plans.request[0]))), dtype=np.int8)
        used = compact_pool(plans, pool)
        self._plans = plans._replace(pool=pool, used=np.array([used], dtype=np.int64))


class RandomPolicy:
    """Uniform random actions for every agent, from its own `seed`ed generator."""

    def __init__(self, env: BatchedState, seed: int | None = None) -> None:
        self.env = env
        self._rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        """Actions (E, N) int64."""
        return random_actions(self.env, self._rng)


BaselineFactory = Callable[[BatchedState, int | None], Callable[[], np.ndarray]]

# The centralized policies over a batched env, by name: each is made with (env, seed) and then called with
# no arguments for the (E, N) actions of the env's current state, keeping its own state between calls.
BASELINES: dict[str, BaselineFactory] = dict(
    zip(policy_names.BASELINES, (RandomPolicy, GreedyPolicy), strict=True)
)


def make_baseline(name: str, env: BatchedState, seed: int | None = None) -> Callable[[], np.ndarray]:
    """The scripted policy `name` (of POLICIES, from sim.policy_names: a baseline or a planner preset) over
    `env`; an unknown name raises a one-line ValueError."""
    if name in PLANNERS:
        from sim.planners import make_planner  # sim.planners builds on this module

        return make_planner(name, env, seed)
    if name not in BASELINES:
        raise ValueError(f"unknown policy {name!r} (expected one of: {', '.join(POLICIES)})")
    return BASELINES[name](env, seed)


def play_episodes(
    env: Any, policy: Callable[[], np.ndarray], episodes: int, recorder: Any = None
) -> list[dict[str, float]]:
    """Step the auto-resetting env until `episodes` episodes have finished; their metrics in finishing order
    (ties by env index). `recorder` (a `sim.episodes.Recorder` around `env`) is stepped in its place."""
    io = env if recorder is None else recorder
    io.reset()
    finished: list[dict[str, float]] = []
    while len(finished) < episodes:
        _, _, _, _, info = io.step(policy())
        finished.extend(metrics for metrics in info["metrics"] if metrics is not None)
    return finished[:episodes]
