"""`GridEnv.snapshot` / `restore`: a batch restored from a snapshot into a fresh GridEnv continues exactly
as the original does (every output of every later step, auto-resets onto new maps and lifelong goal draws
included), so a training checkpoint can be taken at any step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scenarios
from sim import GridEnv
from tests.sim.test_map_growth import curriculum


def scenario_of(kind: str) -> scenarios.Scenario:
    if kind == "lifelong":  # goal streams, soft collisions
        base = scenarios.load("random")
        return dataclasses.replace(
            base,
            agents=dataclasses.replace(base.agents, count=6),
            dynamics=dataclasses.replace(base.dynamics, on_target="restart", max_episode_steps=40),
        )
    if kind == "curriculum":  # auto-resets onto maps of other sizes
        return curriculum([(6, 7), (9, 5), (12, 12)], [9, 14, 20], "finish")
    base = scenarios.load("bottleneck")  # variants, a reward scheme with distance fields
    extras = ("obstacles", "agents", "goal", "path")
    return dataclasses.replace(
        base,
        observation=dataclasses.replace(base.observation, channels=extras, neighbours=1, neighbour_radius=3),
        dynamics=dataclasses.replace(base.dynamics, max_episode_steps=30),
    )


def outputs(env: GridEnv, actions: np.ndarray) -> list[tuple]:
    """Everything `step` returns for each row of actions (copies)."""
    result = []
    for step_actions in actions:
        obs, rewards, terminated, truncated, info = env.step(step_actions)
        final = info.get("final_obs")
        result.append(
            (
                obs.copy(),
                rewards.copy(),
                terminated.copy(),
                truncated.copy(),
                info["metrics"],
                info["active"],
                None if final is None else final.copy(),
                env.neighbours.copy(),
                env.episode_seeds.copy(),
            )
        )
    return result


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(["lifelong", "curriculum", "bottleneck"]),
    seed=st.integers(0, 2**31),
    before=st.integers(0, 40),
    after=st.integers(1, 40),
    num_envs=st.integers(1, 4),
)
def test_restored_batch_continues_exactly(
    kind: str, seed: int, before: int, after: int, num_envs: int
) -> None:
    scenario = scenario_of(kind)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 5, size=(before + after, num_envs, scenario.agents.count))
    original = GridEnv(scenario, num_envs, seed=seed)
    original.reset()
    outputs(original, actions[:before])
    snapshot = original.snapshot()
    expected_obs = original._observation().copy()
    expected = outputs(original, actions[before:])

    restored = GridEnv(scenario, num_envs, seed=12345)  # another seed: the snapshot's must win
    np.testing.assert_array_equal(restored.restore(snapshot), expected_obs)
    got = outputs(restored, actions[before:])
    for step, (want, have) in enumerate(zip(expected, got, strict=True)):
        for part, (a, b) in enumerate(zip(want, have, strict=True)):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f"step {step} output {part}")
            else:
                assert a == b, f"step {step} output {part}"


def test_snapshot_is_a_copy() -> None:
    env = GridEnv(scenario_of("lifelong"), 2, seed=0)
    env.reset()
    snapshot = env.snapshot()
    positions = snapshot["_positions"].copy()
    env.step(np.full((2, 6), 4))
    np.testing.assert_array_equal(snapshot["_positions"], positions)


def test_snapshot_of_another_batch_is_refused() -> None:
    small = GridEnv(scenario_of("lifelong"), 2, seed=0)
    small.reset()
    with pytest.raises(ValueError, match="not of a GridEnv like this one"):
        GridEnv(scenario_of("lifelong"), 3, seed=0).restore(small.snapshot())
    radius_3 = scenario_of("lifelong")
    radius_3 = dataclasses.replace(radius_3, observation=dataclasses.replace(radius_3.observation, radius=3))
    with pytest.raises(ValueError, match="not of a GridEnv like this one"):
        GridEnv(radius_3, 2, seed=0).restore(small.snapshot())
