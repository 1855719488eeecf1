"""The speed options of GridEnv change nothing but speed: uint8 observations hold exactly the float32 ones,
and the serial step kernel (one thread or one env) plays exactly what the threaded one plays."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim import GridEnv


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
