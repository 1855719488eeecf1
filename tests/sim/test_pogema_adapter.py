"""`grid_config_from_scenario` with fixed starts and goal sequences: POGEMA built from the converted config
plays the same episode as GridEnv on the scenario (positions, goals, observations, rewards, metrics)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pogema")

import scenarios
from sim import GridEnv
from sim.pogema_adapter import grid_config_from_scenario
from tests.sim.helpers import first_mismatch, random_actions

pytestmark = pytest.mark.pogema


def fixed_scenario(seed: int, on_target: str, single_goals: bool) -> scenarios.Scenario:
    """A random ASCII map with fixed starts and, per agent, a goal sequence of 2-4 cells (or one goal)."""
    rng = np.random.default_rng(seed)
    height, width = rng.integers(3, 8, size=2)
    obstacles = rng.random((height, width)) < 0.2
    free = np.argwhere(~obstacles)
    count = int(rng.integers(1, min(4, len(free) // 2) + 1))
    cells = free[rng.permutation(len(free))]
    starts = tuple(tuple(int(v) for v in cell) for cell in cells[:count])
    if single_goals:
        goals = tuple(tuple(int(v) for v in cell) for cell in cells[count : 2 * count])
    else:
        goals = tuple(
            tuple(tuple(int(v) for v in free[k]) for k in rng.integers(0, len(free), size=rng.integers(2, 5)))
            for _ in range(count)
        )
    base = scenarios.load("random")
    text = "\n".join("".join("#" if cell else "." for cell in row) for row in obstacles)
    return dataclasses.replace(
        base,
        map=scenarios.schema.MapSpec(generator="ascii", ascii=text),
        agents=dataclasses.replace(base.agents, count=count, placement="fixed", starts=starts, goals=goals),
        dynamics=dataclasses.replace(
            base.dynamics,
            on_target=on_target,
            collision_system="soft",
            max_episode_steps=30,
            pogema_bugs=True,
        ),
        observation=dataclasses.replace(base.observation, radius=2),
        seed=seed,
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**20), on_target=st.sampled_from(["restart", "finish", "nothing"]))
def test_goal_sequences_convert_to_pogemas_targets_xy(seed, on_target):
    scenario = fixed_scenario(seed, on_target, single_goals=False)
    config = grid_config_from_scenario(scenario)
    assert config.targets_xy == [[list(cell) for cell in goal] for goal in scenario.agents.goals]
    env = GridEnv(scenario, num_envs=1, seed=seed)
    assert first_mismatch(config, random_actions, 30, seed=seed, env=env) is None


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**20))
def test_single_fixed_goals_convert_to_pogemas_targets_xy(seed):
    scenario = fixed_scenario(seed, "finish", single_goals=True)
    config = grid_config_from_scenario(scenario)
    env = GridEnv(scenario, num_envs=1, seed=seed)
    assert first_mismatch(config, random_actions, 30, seed=seed, env=env) is None


def test_goals_pogema_cannot_express_are_a_one_line_error():
    scenario = fixed_scenario(1, "restart", single_goals=True)
    with pytest.raises(ValueError, match="needs a goal sequence per agent"):
        grid_config_from_scenario(scenario)
    sequences = fixed_scenario(1, "restart", single_goals=False)
    short = ((sequences.agents.goals[0][0],), *sequences.agents.goals[1:])
    with pytest.raises(ValueError, match=r"agents.goals\[0\]: POGEMA needs"):
        grid_config_from_scenario(
            dataclasses.replace(sequences, agents=dataclasses.replace(sequences.agents, goals=short))
        )
