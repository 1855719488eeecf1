"""`PIBTPolicy`: PIBT (and its stronger variants) as a policy over a batched env, like `GreedyPolicy`.

Call it once per env step, before `env.step`: it reads the env's live state (positions, goals, active,
maps, step counters), updates the agents' priorities from what happened since the last call, refreshes
the distance windows that need it, plans one joint move per environment and returns the actions. It does
not care who chose the previous actions, so the same object labels the states a learner visits (DAgger):
call it every step, with the learner's actions going to `env.step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.baselines import BatchedState
from sim.planners.buffers import new_plan_buffers
from sim.planners.fields import (
    ensure_windows,
    forget_changed_maps,
    gather_all_near,
    new_field_search,
    new_windows,
    side_for_budget,
)
from sim.planners.guidance import ensure_guides, new_guide_scratch, new_guides
from sim.planners.lns import new_window_buffers, plan_window_envs
from sim.planners.pibt import (
    FOLLOW_RULES,
    NUM_RULES,
    RULE_FOLLOW,
    RULE_PREFER_FREE,
    RULE_PREFERENCES,
    RULE_SWAP,
    RULE_TIES,
    RULE_UNDO,
    TIES_FIXED,
    TIES_RANDOM,
    plan_envs,
)
from sim.planners.priorities import update_priorities

DEFAULT_WINDOW_BUDGET = 512 * 2**20
"""Bytes of distance windows a policy keeps by default (sim.planners.fields)."""

_CHOICES = {
    "ties": ("random", "fixed"),
    "priority_ties": ("random", "index"),
    "backtrack": ("stay", "undo"),
}


@dataclass(frozen=True)
class PIBTConfig:
    """Options of the planner (sim/planners/pibt.py explains the PIBT rules).

    swap: LaCAM3's swap technique for head-on meetings in corridors.
    guidance: rank moves by the distance to a congestion-avoiding guide path (sim/planners/guidance.py),
        its A* costs weighted by vertex_weight and contra_weight, `refine` guides re-planned per
        environment and step.
    lns_window: when > 0, plan that many steps ahead by PIBT, improve the plan by `lns_iterations`
        rounds of large neighbourhood search over `lns_neighbourhood` agents (sim/planners/lns.py) and
        take its first step.
    prefer_free: among cells equally close to the goal, those nobody stands on first.
    ties: "random" (a fresh draw per candidate) or "fixed" (up, down, left, right, stay).
    priority_ties: the per-agent values in [0, 1) that order equal priorities and that a priority drops
        back to on arrival: "random" (drawn at each episode start) or "index" (agent / (N + 1), pymapf's).
    backtrack: "stay" (Okumura's PIBT: agents whose inheritance failed stay) or "undo" (pymapf's: every
        reservation of the failed call is undone).
    window_budget: bytes of per-agent distance windows (sim/planners/fields.py); guidance and lns_window
        need windows that cover the whole map.
    """

    swap: bool = False
    guidance: bool = False
    vertex_weight: float = 1.0
    contra_weight: float = 1.0
    refine: int = 0
    lns_window: int = 0
    lns_iterations: int = 32
    lns_neighbourhood: int = 4
    prefer_free: bool = False
    ties: str = "random"
    priority_ties: str = "random"
    backtrack: str = "stay"
    window_budget: int = DEFAULT_WINDOW_BUDGET

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"PIBTConfig.{name} must be one of {', '.join(allowed)}; got {value!r}")
        counts = {"refine": self.refine, "lns_window": self.lns_window, "lns_iterations": self.lns_iterations}
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"PIBTConfig.{name} must be >= 0, got {value}")
        if self.lns_neighbourhood < 1 or self.window_budget < 1:
            raise ValueError("PIBTConfig.lns_neighbourhood and window_budget must be positive")
        if self.vertex_weight < 0 or self.contra_weight < 0:
            raise ValueError("PIBTConfig.vertex_weight and contra_weight must be >= 0")
        if self.guidance and self.lns_window:
            raise ValueError(
                "PIBTConfig: guidance and lns_window do not combine (the search needs distances)"
            )

    @property
    def whole_map(self) -> bool:
        """Whether every agent's window must cover the whole map."""
        return self.guidance or self.lns_window > 0


class PIBTPolicy:
    """PIBT over every environment of a batched env (a `GridEnv`, or anything with its live arrays plus
    `elapsed`, `map_shapes` and a `scenario`).

    `PIBTPolicy(env, seed=0, swap=True)` takes `PIBTConfig`'s fields as keywords (or `config=`).
    `collision_system` defaults to the env scenario's; the plans are made for it (every planned move is
    executed exactly). State kept between calls: the priorities (E, N) float64 and their tie values, the
    step counters and goals seen at the last call, the distance windows and the tie-breaking stream. An
    environment whose step counter did not advance by one since the last call (a new episode, a restored
    snapshot, a step the policy did not see) restarts its priorities; calling twice at the same step
    returns the same plan only with ties="fixed" (random ties draw afresh) and never changes priorities.
    After a call, `planned` (E, N, 2) holds the cells the agents will stand on after the step.

    `preferences`: an (E, N, 5) float32 array the caller owns and rewrites before each call, the agents'
    preferences over the actions (0 stay, 1 up, 2 down, 3 left, 4 right; finite, higher tried first):
    every agent tries its moves in that order, equal preferences in PIBT's distance order
    (sim/planners/pibt.py; `marl.guided` fills it from a trained policy). Without it the planner is plain
    PIBT: the kernel's preference pass is off and `self.preferences` stays all zeros. lns_window plans
    many steps ahead and takes none.
    """

    def __init__(
        self,
        env: BatchedState,
        seed: int | None = None,
        *,
        config: PIBTConfig | None = None,
        collision_system: str | None = None,
        preferences: np.ndarray | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            config = PIBTConfig(**options)
        elif options:
            raise TypeError("give either config= or PIBTConfig options, not both")
        self.env = env
        self.config = config
        system = collision_system or env.scenario.dynamics.collision_system
        if system not in FOLLOW_RULES:
            raise ValueError(
                f"unknown collision system {system!r} (expected one of {', '.join(FOLLOW_RULES)})"
            )
        self.collision_system = system
        rules = np.zeros(NUM_RULES, dtype=np.int64)
        rules[RULE_FOLLOW] = FOLLOW_RULES[system]
        rules[RULE_SWAP] = int(config.swap)
        rules[RULE_UNDO] = int(config.backtrack == "undo")
        rules[RULE_TIES] = TIES_FIXED if config.ties == "fixed" else TIES_RANDOM
        rules[RULE_PREFER_FREE] = int(config.prefer_free)
        rules[RULE_PREFERENCES] = int(preferences is not None)
        self._rules = rules
        entropy = np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)
        self._rng_state = np.array(entropy, dtype=np.uint64)
        shape = (env.num_envs, env.num_agents)
        self.priorities = np.zeros(shape, dtype=np.float64)
        self._ties = np.zeros(shape, dtype=np.float64)
        self._seen_elapsed = np.full(env.num_envs, -1, dtype=np.int64)
        self._seen_goals = np.zeros((*shape, 2), dtype=np.int32)
        self._actions = np.zeros(shape, dtype=np.int64)
        self.planned = np.zeros((*shape, 2), dtype=np.int32)
        self._cells = np.zeros(env.num_agents, dtype=np.int64)
        if preferences is None:
            preferences = np.zeros((*shape, 5), dtype=np.float32)  # never read (RULE_PREFERENCES 0)
        elif config.lns_window:
            raise ValueError("PIBTConfig.lns_window plans several steps ahead: it takes no move preferences")
        elif preferences.shape != (*shape, 5) or preferences.dtype != np.float32:
            raise ValueError(
                f"preferences must be a float32 array of shape {(*shape, 5)}; got {preferences.dtype} "
                f"{preferences.shape}"
            )
        self.preferences = preferences
        self._map_shape: tuple[int, ...] = ()

    def _allocate(self, obstacles: np.ndarray) -> None:
        """Windows and scratch sized for the env's map buffers (first call, or the env grew them)."""
        env = self.env
        map_shape = obstacles.shape[1:]
        side = side_for_budget(env.num_envs, env.num_agents, map_shape, self.config.window_budget)
        if self.config.whole_map and side < max(map_shape):
            need = 2 * env.num_envs * env.num_agents * max(map_shape) ** 2
            raise ValueError(
                f"guidance and lns_window need windows that cover the whole {map_shape[0]}x{map_shape[1]} "
                f"map: window_budget >= {need} bytes (it is {self.config.window_budget})"
            )
        self.windows = new_windows(env.num_envs, env.num_agents, side)
        if self.config.guidance:
            self._guides = new_guides(env.num_envs, env.num_agents, map_shape)
            self._guide_scratch = new_guide_scratch(map_shape)
            self._weights = np.array([self.config.vertex_weight, self.config.contra_weight])
        if self.config.lns_window:
            self._window_buffers = new_window_buffers(env.num_agents, map_shape, self.config.lns_window)
        self._search = new_field_search(map_shape)
        self._buffers = new_plan_buffers(env.num_agents, map_shape)
        self._known_obstacles = np.full_like(obstacles, 2)  # 2 never equals a real map
        self._map_shape = obstacles.shape

    def __call__(self) -> np.ndarray:
        """Actions (E, N) int64 for the env's current state (a buffer reused by the next call)."""
        env = self.env
        obstacles = env.obstacles
        if obstacles.shape != self._map_shape:
            self._allocate(obstacles)
        forget_changed_maps(obstacles, self._known_obstacles, self.windows.goal)
        update_priorities(
            env.positions, env.goals, env.elapsed, self._seen_elapsed, self._seen_goals, self._ties,
            int(self.config.priority_ties == "index"), self.priorities, self._rng_state,
        )  # fmt: skip
        self._refresh_heuristics()
        state = (
            env.positions,
            env.goals,
            env.active,
            obstacles,
            env.map_shapes,
            self.windows,
            self.preferences,
            self.priorities,
        )
        if self.config.lns_window:
            plan_window_envs(
                *state, self._ties, self._rules, self._buffers, self._cells, self._rng_state,
                self._window_buffers, self.config.lns_iterations, self.config.lns_neighbourhood,
                self._actions, self.planned,
            )  # fmt: skip
        else:
            plan_envs(
                *state, self._rules, self._buffers, self._cells, self._rng_state, self._actions, self.planned
            )
        return self._actions

    def _refresh_heuristics(self) -> None:
        """Every active agent's window for its current goal: certified distances, or the guide heuristic."""
        env = self.env
        state = (env.positions, env.goals, env.active, env.obstacles, env.map_shapes, self.windows)
        if self.config.guidance:
            ensure_guides(
                *state, self._guides, self._search, self._guide_scratch, self._weights, self.config.refine,
                self._rng_state,
            )  # fmt: skip
            gather_all_near(env.positions, env.active, env.obstacles, env.map_shapes, self.windows)
        else:
            ensure_windows(*state, self._search)
