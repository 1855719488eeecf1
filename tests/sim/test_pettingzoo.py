"""The PettingZoo env on GridSwarm's own sources (no pogema needed): PettingZoo's API and seed tests for a
built-in name, a YAML path and Scenario objects in every collision system x on_target x observation type;
the global state and the rgb_array frames against the env's live arrays."""

import itertools

import numpy as np
import pytest
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

from scenarios.loader import dump, load
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim.pettingzoo_env import STATE_COLUMNS, parallel_env
from sim.render import OBSTACLE_RGB, agent_colours


def scenario(collision="soft", on_target="finish", obs_type="default", count=5, steps=30, seed=4):
    return Scenario(
        name="pz", map=MapSpec(width=7, height=6, density=0.2), agents=AgentsSpec(count=count),
        dynamics=DynamicsSpec(collision_system=collision, on_target=on_target, max_episode_steps=steps),
        observation=ObservationSpec(radius=2, type=obs_type), seed=seed,
    )  # fmt: skip


RULES = list(itertools.product(("soft", "priority", "block_both"), ("finish", "nothing", "restart")))


@pytest.mark.parametrize("obs_type", ["default", "POMAPF", "MAPF"])
@pytest.mark.parametrize(("collision", "on_target"), RULES, ids=[f"{c}-{o}" for c, o in RULES])
def test_scenarios_pass_pettingzoos_api_and_seed_tests(collision, on_target, obs_type):
    source = scenario(collision, on_target, obs_type)
    env = parallel_env(source, seed=1)
    assert isinstance(env, ParallelEnv)
    parallel_api_test(env, num_cycles=60)
    parallel_seed_test(lambda: parallel_env(source, seed=1), num_cycles=30)


def test_loaded_builtin_and_yaml_scenarios_pass_pettingzoos_api_and_seed_tests(tmp_path):
    path = tmp_path / "pz.yaml"
    path.write_text(dump(scenario("priority", "restart", "POMAPF")))
    for source in (load("bottleneck-test"), load(path)):
        parallel_api_test(parallel_env(source, seed=2), num_cycles=40)
        parallel_seed_test(lambda source=source: parallel_env(source, seed=2), num_cycles=20)


def test_yaml_path_and_its_scenario_play_the_same_episode(tmp_path):
    path = tmp_path / "pz.yaml"
    path.write_text(dump(scenario("block_both", "finish", "MAPF")))
    from_path = parallel_env(load(path), seed=3)
    from_object = parallel_env(scenario("block_both", "finish", "MAPF"), seed=3)
    first, second = from_path.reset()[0], from_object.reset()[0]
    rng = np.random.default_rng(0)
    for _ in range(12):
        for agent in first:
            for key in first[agent]:
                np.testing.assert_array_equal(first[agent][key], second[agent][key])
        actions = {agent: int(rng.integers(0, 5)) for agent in from_path.agents}
        first, second = from_path.step(actions)[0], from_object.step(actions)[0]


def test_state_tracks_positions_goals_and_removal():
    env = parallel_env(scenario("soft", "finish", "MAPF", count=6), seed=5)
    observations, _ = env.reset()
    rng = np.random.default_rng(5)
    radius = 2
    for _ in range(40):
        state = env.state()
        assert state.shape == (6, len(STATE_COLUMNS)) and env.state_space.contains(state)
        for agent, obs in observations.items():
            i = env.possible_agents.index(agent)
            # MAPF's global coordinates are in the padded map, the state's in the map itself
            np.testing.assert_array_equal(state[i, 0:2] + radius, obs["global_xy"])
            np.testing.assert_array_equal(state[i, 2:4] + radius, obs["global_target_xy"])
        live = {env.possible_agents[i] for i in np.flatnonzero(state[:, 4])}
        assert set(env.agents) <= live  # an agent that left the episode is inactive in the state
        if not env.agents:
            break
        # random moves; the finish rule removes agents as they arrive
        observations = env.step({agent: int(rng.integers(0, 5)) for agent in env.agents})[0]
    state[:] = -1
    assert env.state().min() >= 0  # state() returns a fresh array, not a view of the env


def test_state_of_finished_agents_is_inactive():
    env = parallel_env(scenario("soft", "finish", count=1, steps=60), seed=0)
    env.reset()
    inner = env.env
    while env.agents:
        distance = inner.distance_to_goal()[0, 0]
        moves = [a for a in range(1, 5) if _distance_after(inner, a) < distance]
        env.step({"player_0": moves[0]})
    assert env.state()[0, 4] == 0 and tuple(env.state()[0, 0:2]) == tuple(env.state()[0, 2:4])


def _distance_after(inner, action):
    delta = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}[action]
    height, width = inner.map_shapes[0]
    row, col = inner.positions[0, 0] + np.array(delta)
    if not (0 <= row < height and 0 <= col < width) or inner.obstacles[0, row, col]:
        return np.inf
    return inner.distance_to_goal(positions=np.array([[[row, col]]], dtype=np.int32))[0, 0]


def test_rgb_array_frames_show_agents_in_their_colours_and_obstacles():
    env = parallel_env(scenario("soft", "restart", count=4), seed=6, render_mode="rgb_array")
    env.reset()
    cell = 12
    for _ in range(5):
        frame = env.render()
        height, width = env.env.map_shapes[0]
        assert frame.shape == (height * cell, width * cell, 3) and frame.dtype == np.uint8
        colours = agent_colours(4)
        for i, (row, col) in enumerate(env.env.positions[0]):
            centre = frame[row * cell + cell // 2, col * cell + cell // 2]
            np.testing.assert_array_equal(centre, colours[i])
        for row, col in np.argwhere(env.env.obstacles[0, :height, :width]):
            assert tuple(frame[row * cell + 1, col * cell + 1]) == OBSTACLE_RGB
        env.step({agent: 4 for agent in env.agents})


def test_render_without_a_mode_draws_nothing_and_bad_modes_are_refused():
    assert parallel_env(scenario(), seed=0).render() is None
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        parallel_env(scenario(), seed=0, render_mode="human")


def test_returned_observations_are_not_overwritten_by_later_steps():
    env = parallel_env(scenario("soft", "restart", count=3), seed=7)
    observations, _ = env.reset()
    kept = {agent: obs.copy() for agent, obs in observations.items()}
    for _ in range(5):
        env.step({agent: 2 for agent in env.agents})
    for agent in kept:
        np.testing.assert_array_equal(observations[agent], kept[agent])


@pytest.mark.parametrize("source", [42, "bottleneck-test"])
def test_rejects_what_is_neither_a_scenario_nor_a_grid_config(source):
    with pytest.raises(TypeError, match=r"takes a Scenario \(scenarios.load reads a built-in name"):
        parallel_env(source)
