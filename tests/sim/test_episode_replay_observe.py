"""`sim.episode_replay.observe` rebuilds POGEMA's default observation from stored state (differential)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.episode_replay import observe

pogema = pytest.importorskip("pogema")
pytestmark = pytest.mark.pogema


def pogema_state(env) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    grid = env.unwrapped.grid
    obstacles = grid.get_obstacles(ignore_borders=True).astype(np.uint8)
    positions = np.array(grid.get_agents_xy(ignore_borders=True))
    goals = np.array(grid.get_targets_xy(ignore_borders=True))
    active = np.array([grid.is_active[i] for i in range(len(positions))])
    return obstacles, positions, goals, active


@settings(max_examples=25)
@given(
    seed=st.integers(0, 10_000),
    size=st.tuples(st.integers(3, 12), st.integers(3, 12)),
    agents=st.integers(1, 8),
    radius=st.integers(1, 5),
    collisions=st.sampled_from(["priority", "block_both"]),
    on_target=st.sampled_from(["finish", "nothing", "restart"]),
)
def test_observe_equals_pogema_every_step(seed, size, agents, radius, collisions, on_target):
    config = pogema.GridConfig(
        height=size[0], width=size[1], num_agents=agents, obs_radius=radius, density=0.2, seed=seed,
        collision_system=collisions, on_target=on_target, max_episode_steps=12,
    )  # fmt: skip
    try:
        env = pogema.pogema_v0(grid_config=config)
        observations, _ = env.reset()
    except (OverflowError, IndexError, KeyError):
        return  # pogema cannot place this many agents on this map
    rng = np.random.default_rng(seed)
    for step in range(12):
        mine = observe(*pogema_state(env), radius)
        np.testing.assert_array_equal(mine, np.stack(observations), err_msg=f"step {step}")
        observations, *_ = env.step(rng.integers(0, 5, agents).tolist())


def test_a_wrong_goal_clamp_would_be_caught():
    obstacles = np.zeros((9, 9), np.uint8)
    positions, goals, active = np.array([[4, 4]]), np.array([[0, 8]]), np.array([True])
    window = observe(obstacles, positions, goals, active, 2)
    assert window[0, 2, 0, 4] == 1 and window[0, 2].sum() == 1  # far goal up-right -> top-right corner
    assert window[0, 1, 2, 2] == 1  # the agent sees itself
    edge = observe(obstacles, np.array([[0, 0]]), goals, active, 2)[0, 0]
    assert edge[1].tolist() == [0, 1, 1, 1, 1] and edge[0].tolist() == [0] * 5  # one ring, then free
