"""Lifelong goal sequences in YAML: `agents.goals` entries that are lists of cells, cycled on arrival with
on_target restart (POGEMA's `targets_xy` sequences); the loader's errors for misuse."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import scenarios
from scenarios import ScenarioError
from sim import GridEnv
from sim.baselines import GreedyPolicy
from sim.maps import build_layout

OPEN_MAP = "'..... ..... ..... .....'"


def sequence_yaml(goals: str, on_target: str = "restart", count: int = 1, starts: str = "[[0, 0]]") -> str:
    return textwrap.dedent(
        f"""\
        map: {{generator: ascii, ascii: {OPEN_MAP}}}
        agents:
          count: {count}
          placement: fixed
          starts: {starts}
          goals: {goals}
        dynamics: {{on_target: {on_target}, max_episode_steps: 60}}
        """
    )


def test_goal_lists_load_and_round_trip():
    text = sequence_yaml("[[[0, 4], [3, 4]], [2, 2]]", count=2, starts="[[0, 0], [3, 0]]")
    scenario = scenarios.loads(text)
    assert scenario.agents.goals == (((0, 4), (3, 4)), (2, 2))
    assert scenarios.loads(scenarios.dump(scenario)).agents == scenario.agents


def test_a_lone_greedy_agent_visits_its_sequence_in_order_and_cycles():
    sequence = [(0, 4), (3, 4), (3, 0)]
    env = GridEnv(scenarios.loads(sequence_yaml("[[[0, 4], [3, 4], [3, 0]]]")), auto_reset=False)
    policy = GreedyPolicy(env, seed=0)
    env.reset()
    assert tuple(env.goals[0, 0]) == sequence[0]
    visited, steps_to_goal, steps = [], [], 0
    for _ in range(40):
        goal = tuple(env.goals[0, 0])
        _, rewards, *_ = env.step(policy())
        steps += 1
        position = tuple(env.positions[0, 0])
        if position == goal:  # arrival: a reward of 1 and the next goal of the sequence
            assert rewards[0, 0] == 1.0
            visited.append(goal)
            steps_to_goal.append(steps)
            steps = 0
            assert tuple(env.goals[0, 0]) == sequence[len(visited) % 3]
        else:
            assert rewards[0, 0] == 0.0 and tuple(env.goals[0, 0]) == goal
    assert visited[:5] == [*sequence, *sequence[:2]]
    assert steps_to_goal[:5] == [4, 3, 4, 7, 3]  # greedy alone walks the Manhattan distance on an open map


def test_a_single_cell_among_sequences_is_a_one_goal_sequence():
    text = sequence_yaml("[[[0, 4], [3, 4]], [2, 2]]", count=2, starts="[[0, 0], [3, 0]]")
    env = GridEnv(scenarios.loads(text), auto_reset=False)
    policy = GreedyPolicy(env, seed=1)
    env.reset()
    goals_seen = {(0, 4)}, {(2, 2)}
    for _ in range(30):
        env.step(policy())
        for agent in range(2):
            goals_seen[agent].add(tuple(env.goals[0, agent]))
    assert goals_seen == ({(0, 4), (3, 4)}, {(2, 2)})


def test_sequence_goals_on_obstacles_are_cleared():
    text = sequence_yaml("[[[0, 4], [3, 3]]]").replace(OPEN_MAP, "'..... ..... ..... ...#.'")
    env = GridEnv(scenarios.loads(text))
    env.reset()
    assert env.obstacles[0, 3, 3] == 0


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (sequence_yaml("[[[0, 4], [3, 4]]]", on_target="finish"), "agents.goals", "need on_target 'restart'"),
        (sequence_yaml("[[0, 4]]"), "dynamics.on_target", "per-agent goal lists"),
        (sequence_yaml("[[]]"), "agents.goals[0]", "at least one goal cell"),
        (sequence_yaml("[[[0, 4], [0, -1]]]"), "agents.goals[0][1]", "expected a cell non-negative"),
        (sequence_yaml("[[[0, 4], [1]]]"), "agents.goals[0]", "expected a list of 2 integers or a list of"),
    ],
)
def test_misused_goal_lists_are_one_line_errors(text, key, fragment):
    with pytest.raises(ScenarioError) as error:
        scenarios.loads(text)
    message = str(error.value)
    assert "\n" not in message and key in message and fragment in message


def test_a_sequence_cell_outside_a_sized_map_names_its_place():
    text = textwrap.dedent(
        """\
        map: {generator: random, width: 5, height: 5, density: 0.0}
        agents: {count: 1, placement: fixed, starts: [[0, 0]], goals: [[[0, 4], [9, 1]]]}
        dynamics: {on_target: restart}
        """
    )
    with pytest.raises(ScenarioError, match=r"agents.goals\[0\]\[1\].*inside the 5x5 map, found \[9, 1\]"):
        scenarios.loads(text)


def test_sequences_are_arrays_padded_for_the_env():
    text = sequence_yaml("[[[0, 4], [3, 4], [3, 0]], [[2, 2]]]", count=2, starts="[[0, 0], [3, 1]]")
    layout = build_layout(scenarios.loads(text), 0)
    expected = np.array([[[0, 4], [3, 4], [3, 0]], [[2, 2], [-1, -1], [-1, -1]]])
    np.testing.assert_array_equal(layout.goals, expected)
