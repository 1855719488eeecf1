"""The speed options of GridEnv change nothing but speed: uint8 observations hold exactly the float32 ones,
and the serial step kernel (one thread or one env) plays exactly what the threaded one plays."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim import GridEnv
from tests.sim.helpers import curriculum


def scenario(collision, on_target, observation, count=10, steps=12):
    return Scenario(
        map=MapSpec(width=11, height=8, density=0.3), agents=AgentsSpec(count=count),
        dynamics=DynamicsSpec(collision_system=collision, on_target=on_target, max_episode_steps=steps),
        observation=observation,
    )  # fmt: skip


OBSERVATIONS = (
    ObservationSpec(radius=2),
    ObservationSpec(radius=3, channels=("obstacles", "agents", "goal", "path", "other_goals")),
    ObservationSpec(radius=1, type="POMAPF"),
    ObservationSpec(radius=2, type="MAPF"),
)


def as_arrays(observation):
    """The observation's arrays in a fixed order (a dict by key)."""
    if isinstance(observation, dict):
        return [observation[key] for key in sorted(observation)]
    return [observation]


def play(env, steps, seed):
    """Observations (incl. auto-reset final ones), rewards and termination of `steps` random steps, copied."""
    rng = np.random.default_rng(seed)
    trace = [a.copy() for a in as_arrays(env.reset())]
    for _ in range(steps):
        actions = rng.integers(0, 5, (env.num_envs, env.num_agents))
        obs, rewards, terminated, truncated, info = env.step(actions)
        trace += [a.copy() for a in as_arrays(obs)] + [rewards.copy(), terminated.copy(), truncated.copy()]
        trace += [a.copy() for a in as_arrays(info.get("final_obs", {}))] + [repr(info["metrics"])]
    return trace


@settings(max_examples=12, deadline=None)
@given(
    collision=st.sampled_from(["soft", "priority", "block_both"]),
    on_target=st.sampled_from(["restart", "finish", "nothing"]),
    observation=st.sampled_from(OBSERVATIONS),
    seed=st.integers(0, 2**31),
)
def test_uint8_observations_equal_float32_ones(collision, on_target, observation, seed):
    spec = scenario(collision, on_target, observation)
    wide = play(GridEnv(spec, num_envs=2, seed=seed), 25, seed)
    narrow = play(GridEnv(spec, num_envs=2, seed=seed, obs_dtype=np.uint8), 25, seed)
    assert len(wide) == len(narrow)
    window_dtypes = set()
    for a, b in zip(wide, narrow, strict=True):
        if isinstance(a, str):
            assert a == b
            continue
        if a.dtype == np.float32 and b.dtype == np.uint8:
            window_dtypes.add(b.dtype)
        assert a.shape == b.shape and np.array_equal(a, b.astype(a.dtype))
    assert window_dtypes == {np.dtype(np.uint8)}  # the windows really were uint8


@settings(max_examples=8, deadline=None)
@given(
    collision=st.sampled_from(["soft", "priority", "block_both"]),
    on_target=st.sampled_from(["restart", "finish", "nothing"]),
    seed=st.integers(0, 2**31),
)
def test_serial_kernel_plays_what_the_threaded_kernel_plays(collision, on_target, seed):
    spec = scenario(collision, on_target, OBSERVATIONS[0], steps=9)
    threaded = GridEnv(spec, num_envs=3, seed=seed)  # num_threads None: numba's thread pool
    serial = GridEnv(spec, num_envs=3, seed=seed, num_threads=1)
    assert threaded._step_kernel is not serial._step_kernel
    for a, b in zip(play(threaded, 30, seed), play(serial, 30, seed), strict=True):
        assert a == b if isinstance(a, str) else np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, bool])
def test_other_observation_dtypes_are_refused(dtype):
    with pytest.raises(ValueError, match="obs_dtype must be float32 or uint8, got"):
        GridEnv(scenario("soft", "restart", OBSERVATIONS[0]), obs_dtype=dtype)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), on_target=st.sampled_from(["finish", "restart"]))
def test_windows_written_only_on_change_equal_windows_written_afresh(seed: int, on_target: str) -> None:
    """The step kernel skips the obstacle window of an agent that did not move and rewrites two cells of
    the goal window: after every step (auto-resets onto new maps of other sizes included) each agent's
    channels equal the windows cut from the current grids. Crowded small maps, so agents often start an
    episode on the cell they ended the last one on."""
    scenario = curriculum([(5, 5), (6, 4), (4, 7)], [6, 9, 4], on_target)
    scenario = dataclasses.replace(scenario, agents=dataclasses.replace(scenario.agents, count=3))
    env = GridEnv(scenario, 3, seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    size = 2 * env.radius + 1
    for _ in range(40):
        obs = env.step(rng.integers(0, 5, size=(3, 3)))[0]
        for e in range(3):
            for i, (row, col) in enumerate(env.positions[e]):
                window = (slice(row, row + size), slice(col, col + size))
                np.testing.assert_array_equal(obs[e, i, 0], env._state.padded_obstacles[e][window])
                np.testing.assert_array_equal(obs[e, i, 1], env._state.occupancy[e][window])
                goal_row, goal_col = env.goals[e, i]
                expected = np.zeros((size, size), np.float32)
                r = env.radius
                expected[r - np.clip(row - goal_row, -r, r), r - np.clip(col - goal_col, -r, r)] = 1
                np.testing.assert_array_equal(obs[e, i, 2], expected)
