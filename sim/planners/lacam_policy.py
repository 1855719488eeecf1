"""LaCAM as a policy over a batched env (`gridswarm run SCENARIO --policy lacam`, an imitation expert).

Each environment's one-shot episode is planned whole by `sim.planners.lacam` at its first step, and the
plan is played move by move. Whenever the env is not where the plan put it (another policy acted in
between, as DAgger's learner does, or a restored snapshot), the remaining agents are planned again from
where they stand. Where LaCAM finds no plan within its step limit, that environment is played by PIBT with
the swap technique for the rest of its episode (`fallbacks` counts them); so is one whose agents share a
goal (no configuration holds them all).

LaCAM's paths have no vertex or swap conflict but let an agent enter the cell another leaves in the same
step, which only POGEMA's `soft` collision system executes exactly; lifelong episodes have no final
configuration to plan for. Both are refused at construction with a one-line `NotPlannable`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.actions import actions_of_moves
from sim.baselines import BatchedState
from sim.planners.lacam import MAX_AGENTS, lacam
from sim.planners.policy import PIBTPolicy


class NotPlannable(ValueError):
    """A scenario LaCAM cannot play (lifelong, a collision system other than soft, too many agents)."""


STEP_LIMIT = 20_000
"""Constraints LaCAM tries per plan before PIBT takes over (docs/planners.md: 5-141 ms per POGEMA
benchmark instance of 8-64 agents at this limit)."""


@dataclass(frozen=True)
class _Plan:
    """One environment's plan from step `start` of the episode with seed `episode`: `paths` (T+1, n, 2)
    int64 of the agents `agents` (n,), None where LaCAM found none (PIBT plays on)."""

    episode: int
    start: int
    agents: np.ndarray
    paths: np.ndarray | None

    def cells_at(self, step: int) -> np.ndarray:
        """(n, 2): where the plan has its agents at episode step `step` (the goals after its end)."""
        return self.paths[min(step - self.start, len(self.paths) - 1)]

    def holds(self, episode: int, step: int, positions: np.ndarray, active: np.ndarray) -> bool:
        """Whether the environment (its (N, 2) `positions` and (N,) `active` at `step`) is where the plan
        put it: same episode, every active agent planned and on its planned cell."""
        if episode != self.episode or step < self.start:
            return False
        if self.paths is None:
            return True  # PIBT plays the rest of the episode
        planned = np.zeros(len(active), dtype=bool)
        planned[self.agents] = True
        if (active & ~planned).any():
            return False
        still = active[self.agents]
        return bool((positions[self.agents][still] == self.cells_at(step)[still]).all())


class LaCAMPolicy:
    """LaCAM over every environment of a batched env (module docstring). Called with no arguments, it
    gives the (E, N) int64 actions for the env's current state (`positions`, `goals`, `active`,
    `obstacles`, `map_shapes`, `elapsed`, `episode_seeds`)."""

    def __init__(
        self, env: BatchedState, seed: int | None = None, *, step_limit: int = STEP_LIMIT, swap: bool = True
    ) -> None:
        scenario = env.scenario
        dynamics = scenario.dynamics
        if dynamics.on_target == "restart":
            raise NotPlannable(
                f"lacam plans one-shot episodes; scenario '{scenario.name}' is lifelong (on_target: "
                "restart): use a PIBT preset"
            )
        if dynamics.collision_system != "soft":
            raise NotPlannable(
                f"lacam's paths let an agent enter a cell another leaves in the same step, which "
                f"collision_system '{dynamics.collision_system}' of scenario '{scenario.name}' refuses: "
                "it plays collision_system soft"
            )
        if env.num_agents > MAX_AGENTS:
            raise NotPlannable(
                f"lacam plans at most {MAX_AGENTS} agents; scenario '{scenario.name}' has {env.num_agents}"
            )
        self.env, self.step_limit, self.swap = env, step_limit, swap
        self.seed = 0 if seed is None else int(seed)
        self.plans: list[_Plan | None] = [None] * env.num_envs
        self.fallbacks = 0
        self._pibt: PIBTPolicy | None = None

    def __call__(self) -> np.ndarray:
        env = self.env
        actions = np.zeros((env.num_envs, env.num_agents), dtype=np.int64)
        by_pibt = np.zeros(env.num_envs, dtype=bool)
        for e in range(env.num_envs):
            active = np.asarray(env.active[e], dtype=bool)
            if not active.any():
                continue
            episode, step = int(env.episode_seeds[e]), int(env.elapsed[e])
            plan = self.plans[e]
            if plan is None or not plan.holds(episode, step, env.positions[e], active):
                plan = self.plans[e] = self._plan(e, episode, step, active)
            if plan.paths is None:
                by_pibt[e] = True
                continue
            moving = active[plan.agents]  # (n,) an agent that left the map no longer moves
            agents = plan.agents[moving]
            actions[e, agents] = actions_of_moves(plan.cells_at(step + 1)[moving] - env.positions[e][agents])
        if by_pibt.any():
            if self._pibt is None:
                self._pibt = PIBTPolicy(env, seed=self.seed, swap=True)
            actions[by_pibt] = self._pibt()[by_pibt]
        return actions

    def _plan(self, e: int, episode: int, step: int, active: np.ndarray) -> _Plan:
        """Plan environment e's active agents from where they stand at `step`."""
        env = self.env
        height, width = (int(v) for v in env.map_shapes[e])
        agents = np.flatnonzero(active)
        goals = env.goals[e][agents]
        paths = None
        if len(np.unique(goals, axis=0)) == len(goals):  # agents sharing a goal have no final configuration
            seed = np.random.SeedSequence([self.seed, episode, step]).generate_state(1)[0]
            paths = lacam(
                env.obstacles[e, :height, :width],
                env.positions[e][agents],
                goals,
                step_limit=self.step_limit,
                seed=int(seed),
                swap=self.swap,
            ).paths
        if paths is None:
            self.fallbacks += 1
        return _Plan(episode, step, agents, paths)
