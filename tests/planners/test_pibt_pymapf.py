"""Differential test of the PIBT planner against pymapf 0.9.0's PIBT (an independent pure-Python version).

pymapf's `pibt_step` and our planner differ in three ways, each an option of ours:
- candidate ties: pymapf shuffles the candidates (its neighbours up, down, left, right, then the agent's
  cell) and sorts them stably by distance; given a shuffle that leaves them in place it takes them in that
  order, which is our ties="fixed";
- priority ties: pymapf's priorities start at, and drop back to, agent / (N + 1): our
  priority_ties="index" (ours default to uniform draws);
- backtracking: when a pushed agent cannot move, pymapf undoes every reservation of the failed call (the
  pushed agents are still free to be pushed again later in the step), where Okumura's PIBT (pibt2, pypibt)
  leaves them staying: our backtrack="undo" against the default "stay".
With those three set, both must produce the same configuration at every step, on one-shot instances
('nothing') and on lifelong ones (the env's new goals are handed to pymapf as they appear). With Okumura's
backtracking the runs agree until a pushed agent fails, which `test_okumura_backtracking_differs...`
shows is what separates them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sim.planners import PIBTPolicy
from tests.planners.instances import env_for, instance

pibt = pytest.importorskip("pymapf.algorithms.pibt", reason="pymapf 0.9.0 is a dev extra")
GridMap = pytest.importorskip("pymapf.core.grid").GridMap

PYMAPF_OPTIONS = {"ties": "fixed", "priority_ties": "index", "backtrack": "undo"}


class InPlace:
    """A tie-breaking 'rng' for pymapf whose shuffle leaves the candidates in their listed order."""

    def shuffle(self, items: list) -> None:
        pass


def pymapf_run(obstacles, starts, goal_steps, steps):
    """pymapf's PIBT stepped like PIBT's own loop; goal_steps(t) gives the goals at step t."""
    grid = GridMap(obstacles.tolist())
    names = [f"a{i}" for i in range(len(starts))]
    base = {name: i / (len(names) + 1) for i, name in enumerate(names)}
    priorities = dict(base)
    positions = {name: tuple(int(v) for v in start) for name, start in zip(names, starts, strict=True)}
    trajectory = [np.array(starts)]
    for t in range(steps):
        goals = {name: tuple(int(v) for v in goal) for name, goal in zip(names, goal_steps(t), strict=True)}
        distance = pibt._DistanceOracle(grid, goals)
        moved = pibt.pibt_step(grid, names, positions, goals, priorities, distance, rng=InPlace())
        assert moved is not None
        for name in names:
            priorities[name] = base[name] if moved[name] == goals[name] else priorities[name] + 1
        positions = moved
        trajectory.append(np.array([positions[name] for name in names]))
    return np.stack(trajectory)


def our_run(obstacles, starts, goals, steps, on_target, **options):
    """Our planner on the same instance; returns the positions and the goals in force at every step."""
    env = env_for(obstacles, starts, goals, "soft", on_target, steps=steps + 1)
    policy = PIBTPolicy(env, seed=0, **options)
    trajectory, goal_history = [env.positions[0].copy()], []
    for _ in range(steps):
        goal_history.append(env.goals[0].copy())
        env.step(policy())
        trajectory.append(env.positions[0].copy())
    return np.stack(trajectory), goal_history


CASES = [
    (seed, height, width, density, agents)
    for seed, (height, width, density, agents) in enumerate(
        [(8, 9, 0.2, 5), (8, 9, 0.2, 20), (6, 6, 0.0, 30), (10, 7, 0.3, 25), (12, 12, 0.25, 60)] * 8
    )
]


@pytest.mark.parametrize("on_target", ["nothing", "restart"])
def test_same_configuration_as_pymapf_at_every_step(on_target):
    for seed, height, width, density, agents in CASES:
        obstacles, starts, goals = instance(seed, height, width, density, agents)
        ours, goal_history = our_run(obstacles, starts, goals, 30, on_target, **PYMAPF_OPTIONS)
        theirs = pymapf_run(obstacles, starts, lambda t, history=goal_history: history[t], 30)
        differing = np.flatnonzero((ours != theirs).any(axis=(1, 2)))
        assert differing.size == 0, f"instance {seed}: first differs at step {differing[0]}"


def test_okumura_backtracking_differs_from_pymapf_only_where_a_push_fails():
    # the instances where 'stay' and 'undo' part: each has a step where a pushed agent could not move
    parted = 0
    for seed, height, width, density, agents in CASES:
        obstacles, starts, goals = instance(seed, height, width, density, agents)
        stay, history = our_run(
            obstacles, starts, goals, 30, "nothing", **{**PYMAPF_OPTIONS, "backtrack": "stay"}
        )
        theirs = pymapf_run(obstacles, starts, lambda t, history=history: history[t], 30)
        parted += int((stay != theirs).any())
    assert 0 < parted < len(CASES)


class PlannedMoves:
    """One environment stepped by the planner's own planned moves: what the soft rule executes for a
    conflict-free joint move (test_pibt_properties), without the simulator's kernels."""

    def __init__(self, obstacles: np.ndarray, starts: np.ndarray, goals: np.ndarray) -> None:
        self.num_envs, self.num_agents = 1, len(starts)
        self.obstacles = obstacles[None].astype(np.uint8)
        self.map_shapes = np.array([obstacles.shape], dtype=np.int32)
        self.positions = starts[None].astype(np.int32)
        self.goals = goals[None].astype(np.int32)
        self.active = np.ones((1, len(starts)), dtype=bool)
        self.elapsed = np.zeros(1, dtype=np.int64)

    def run(self, policy: PIBTPolicy, steps: int) -> np.ndarray:
        trajectory = [self.positions[0].copy()]
        for _ in range(steps):
            policy()
            self.positions[:] = policy.planned
            self.elapsed += 1
            trajectory.append(self.positions[0].copy())
        return np.stack(trajectory)


def parted_runs(cases) -> int:
    """How many one-shot instances the planner (stepping itself) and pymapf play differently."""
    parted = 0
    for seed, height, width, density, agents in cases:
        obstacles, starts, goals = instance(seed, height, width, density, agents)
        state = PlannedMoves(obstacles, starts, goals)
        ours = state.run(PIBTPolicy(state, seed=0, collision_system="soft", **PYMAPF_OPTIONS), 30)
        theirs = pymapf_run(obstacles, starts, lambda t, goals=goals: goals, 30)
        parted += int((ours != theirs).any())
    return parted


def test_the_harness_catches_a_planner_that_lets_agents_swap():
    # A deliberate bug: the swap check is gone, so an agent may plan to trade cells with one that already
    # chose its cell. The kernels run as Python (numba's JIT off) in a subprocess so the bug can be
    # patched in; the correct planner agrees with pymapf on every instance there, the broken one does not.
    script = textwrap.dedent(
        """
        import sim.planners.pibt as kernels
        from tests.planners.test_pibt_pymapf import CASES, parted_runs

        print("correct", parted_runs(CASES))
        kernels._swaps = lambda agent, holder, here, next_cell: False
        print("broken", parted_runs(CASES))
        """
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = dict(line.split() for line in done.stdout.splitlines())
    assert counts["correct"] == "0"
    assert int(counts["broken"]) > 0
