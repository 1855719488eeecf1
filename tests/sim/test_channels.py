"""Extra observation channels (`path`, `other_goals`) against plain-Python references."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sim.channels import ExtraChannels
from sim.distance import DistanceCache
from tests.sim.helpers import reference_bfs, reference_path_plane


def reference_other_goals_plane(positions, goals, active, agent, radius):
    size = 2 * radius + 1
    plane = np.zeros((size, size), dtype=np.float32)
    for other in range(len(goals)):
        a, b = goals[other] - positions[agent] + radius
        if other != agent and active[other] and 0 <= a < size and 0 <= b < size:
            plane[a, b] = 1
    return plane


@st.composite
def worlds(draw):
    height, width = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    obstacles = (rng.random((1, height, width)) < draw(st.floats(0.0, 0.5))).astype(np.uint8)
    num_agents = draw(st.integers(1, 10))
    positions = np.stack([rng.integers(0, height, num_agents), rng.integers(0, width, num_agents)], -1)
    goals = np.stack([rng.integers(0, height, num_agents), rng.integers(0, width, num_agents)], -1)
    active = rng.random(num_agents) < 0.8
    radius = draw(st.integers(1, 4))
    return obstacles, positions[None].astype(np.int32), goals[None].astype(np.int32), active[None], radius


@given(worlds())
def test_path_and_other_goals_channels_match_references(world):
    obstacles, positions, goals, active, radius = world
    size = 2 * radius + 1
    obs = np.full((1, positions.shape[1], 4, size, size), 7.0, dtype=np.float32)
    ExtraChannels(("obstacles", "path", "agents", "other_goals"), DistanceCache(obstacles)).write(
        obs, positions, goals, active
    )
    for agent in range(positions.shape[1]):
        distance = reference_bfs(obstacles[0], tuple(goals[0, agent]))
        expected_path = reference_path_plane(distance, positions[0, agent], radius)
        np.testing.assert_array_equal(obs[0, agent, 1], expected_path, err_msg=f"path of agent {agent}")
        expected_goals = reference_other_goals_plane(positions[0], goals[0], active[0], agent, radius)
        np.testing.assert_array_equal(obs[0, agent, 3], expected_goals, err_msg=f"goals of agent {agent}")
    assert (obs[:, :, [0, 2]] == 7.0).all()  # other channels untouched


def test_path_on_an_open_corridor_is_a_straight_line_to_the_goal():
    obstacles = np.zeros((1, 3, 9), dtype=np.uint8)
    obs = np.zeros((1, 1, 1, 5, 5), dtype=np.float32)
    positions, goals = np.array([[[1, 2]]], dtype=np.int32), np.array([[[1, 8]]], dtype=np.int32)
    ExtraChannels(("path",), DistanceCache(obstacles)).write(obs, positions, goals, np.array([[True]]))
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[2, 2:] = 1  # centre, then right until the window edge
    np.testing.assert_array_equal(obs[0, 0, 0], expected)
