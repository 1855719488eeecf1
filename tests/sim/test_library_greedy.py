"""Every built-in scenario (every variant's extremes) played by the greedy baseline: agents stay on free
cells of their map, active agents never share a cell, greedy never moves an agent away from an unchanged
goal, finished episodes report POGEMA's metric keys, and a lone greedy agent arrives in exactly its BFS
distance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import scenarios
from sim import GridEnv
from sim.baselines import GreedyPolicy

FAST = [name for name in scenarios.builtin_names() if name != "swarm-10k"]
POGEMA_METRIC_KEYS = {
    "finish": ["ISR", "CSR", "ep_length"],
    "nothing": ["ISR", "CSR", "ep_length", "SoC", "makespan"],
    "restart": ["avg_throughput"],
}  # pogema 1.4.0's metric wrappers, in its order


def extreme_variants(name: str) -> list[scenarios.Scenario]:
    variants = scenarios.expand_variants(scenarios.load(name))
    return [variants[0], variants[-1]] if len(variants) > 1 else variants


def with_limit(scenario: scenarios.Scenario, steps: int) -> scenarios.Scenario:
    dynamics = dataclasses.replace(scenario.dynamics, max_episode_steps=steps)
    return dataclasses.replace(scenario, dynamics=dynamics)


def assert_on_free_distinct_cells(env: GridEnv) -> None:
    for e in range(env.num_envs):
        height, width = env.map_shapes[e]
        cells = env.positions[e][env.active[e]]
        assert ((cells >= 0) & (cells < (height, width))).all()
        assert not env.obstacles[e, cells[:, 0], cells[:, 1]].any(), "an active agent stands on an obstacle"
        assert len(np.unique(cells, axis=0)) == len(cells), "two active agents share a cell"


def play_greedy(
    scenario: scenarios.Scenario, steps: int, num_envs: int = 2, check_distances: bool = True
) -> list[dict]:
    """Plays `steps` greedy steps checking the invariants after each (the distance one needs a BFS field
    per distinct goal); returns the finished metrics."""
    env = GridEnv(scenario, num_envs=num_envs, seed=11)
    policy = GreedyPolicy(env, seed=11)
    env.reset()
    finished = []
    for _ in range(steps):
        distance_before = env.distance_to_goal().copy() if check_distances else None
        goals_before, active_before = env.goals.copy(), env.active.copy()
        _, _, _, _, info = env.step(policy())
        assert_on_free_distinct_cells(env)
        finished += [metrics for metrics in info["metrics"] if metrics is not None]
        if distance_before is None:
            continue
        same_episode = np.array([metrics is None for metrics in info["metrics"]])[:, None]
        same_goal = (env.goals == goals_before).all(axis=2) & active_before & env.active & same_episode
        change = env.distance_to_goal()[same_goal].astype(np.int64) - distance_before[same_goal]
        assert np.isin(change, (-1, 0)).all(), "greedy moved an agent away from its goal"
    return finished


@pytest.mark.parametrize("name", FAST)
def test_greedy_plays_every_builtin_within_the_rules(name):
    for variant in extreme_variants(name):
        finished = play_greedy(with_limit(variant, 12), steps=30)
        assert len(finished) >= 2  # both envs finished at least one 12-step episode
        expected = POGEMA_METRIC_KEYS[variant.dynamics.on_target]
        assert all(list(metrics) == expected for metrics in finished)


@pytest.mark.slow
def test_greedy_plays_swarm_10k_within_the_rules():
    # the first step plans 10k paths (a bounded search each, ~10 s here); later steps only follow them
    play_greedy(scenarios.load("swarm-10k"), steps=3, num_envs=1, check_distances=False)


@pytest.mark.parametrize("name", scenarios.builtin_names())
def test_a_lone_greedy_agent_arrives_in_exactly_its_bfs_distance(name):
    for variant in extreme_variants(name):
        lone = dataclasses.replace(
            variant,
            agents=dataclasses.replace(variant.agents, count=1),
            dynamics=dataclasses.replace(variant.dynamics, on_target="finish", max_episode_steps=10**6),
        )
        env = GridEnv(lone, num_envs=1, seed=5, auto_reset=False)
        policy = GreedyPolicy(env, seed=5)
        env.reset()
        distance = int(env.distance_to_goal()[0, 0])
        steps = 0
        while env.active[0, 0]:
            _, _, _, _, info = env.step(policy())
            steps += 1
        assert steps == distance and info["metrics"][0] == {"ISR": 1.0, "CSR": 1.0, "ep_length": distance}
