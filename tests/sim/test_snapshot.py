"""`GridEnv.snapshot` / `restore`: a batch restored from a snapshot into a fresh GridEnv continues exactly
as the original does (every output of every later step, auto-resets onto new maps and lifelong goal draws
included), so a training checkpoint can be taken at any step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scenarios
from sim import GridEnv
from sim.baselines import GreedyPolicy
from sim.state import SNAPSHOT_FIELDS
from tests.sim.helpers import curriculum

DATA = Path(__file__).parent / "data"


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


def greedy_outputs(env: GridEnv, steps: int, seed: int = 0) -> tuple[np.ndarray, list[tuple]]:
    """The greedy baseline's actions for `steps` steps, and everything each step returns. Greedy agents
    reach their goals, so lifelong goals are drawn from the goal streams before and after a snapshot."""
    policy = GreedyPolicy(env, seed=seed)
    actions, result = [], []
    for _ in range(steps):
        actions.append(policy().copy())
        result += outputs(env, actions[-1][None])
    return np.array(actions), result


def assert_same_outputs(expected: list[tuple], got: list[tuple]) -> None:
    for step, (want, have) in enumerate(zip(expected, got, strict=True)):
        for part, (a, b) in enumerate(zip(want, have, strict=True)):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f"step {step} output {part}")
            else:
                assert a == b, f"step {step} output {part}"


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
    original = GridEnv(scenario_of(kind), num_envs, seed=seed)
    obs = original.reset()
    policy = GreedyPolicy(original, seed=seed)
    for _ in range(before):
        obs = original.step(policy())[0]
    snapshot = original.snapshot()
    expected_obs = obs.copy()
    actions, expected = greedy_outputs(original, after)

    restored = GridEnv(scenario_of(kind), num_envs, seed=12345)  # another seed: the snapshot's must win
    np.testing.assert_array_equal(restored.restore(snapshot), expected_obs)
    assert_same_outputs(expected, outputs(restored, actions))


def test_snapshot_is_a_copy() -> None:
    env = GridEnv(scenario_of("lifelong"), 2, seed=0)
    env.reset()
    snapshot = env.snapshot()
    positions = snapshot["positions"].copy()
    env.step(np.full((2, 6), 4))
    np.testing.assert_array_equal(snapshot["positions"], positions)


def test_snapshot_of_another_batch_is_refused() -> None:
    small = GridEnv(scenario_of("lifelong"), 2, seed=0)
    small.reset()
    with pytest.raises(ValueError, match="not of a GridEnv like this one"):
        GridEnv(scenario_of("lifelong"), 3, seed=0).restore(small.snapshot())
    radius_3 = scenario_of("lifelong")
    radius_3 = dataclasses.replace(radius_3, observation=dataclasses.replace(radius_3.observation, radius=3))
    with pytest.raises(ValueError, match="not of a GridEnv like this one"):
        GridEnv(radius_3, 2, seed=0).restore(small.snapshot())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s | {"format": np.array(3)}, r"snapshot format 3, expected 1 or 2"),
        (
            lambda s: s | {"positions": s["positions"].astype(np.int64)},
            r"\(positions: \(2, 6, 2\) int64, expected",
        ),
        (lambda s: s | {"labels": s["labels"][:, :-1]}, r"\(labels: "),
        (lambda s: {k: v for k, v in s.items() if k != "streams"}, r"entries differ: \['streams'\]"),
        (lambda s: s | {"scratch": np.zeros(1)}, r"entries differ: \['scratch'\]"),
    ],
)
def test_a_damaged_snapshot_is_refused_with_what_differs(change, message) -> None:
    env = GridEnv(scenario_of("lifelong"), 2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=message):
        GridEnv(scenario_of("lifelong"), 2, seed=0).restore(change(env.snapshot()))


@pytest.mark.parametrize("kind", ["lifelong", "curriculum", "bottleneck"])
def test_format_1_snapshot_holds_the_same_state_and_continues_exactly(kind: str) -> None:
    """tests/sim/data/snapshot_format1_<kind>.npz: the format-1 snapshot (`sim.state`) that GridEnv wrote
    at commit 58ecd81 of GridEnv(scenario_of(kind), 2, seed=7) after 25 steps of GreedyPolicy(env, seed=7)."""
    scenario = scenario_of(kind)
    original = GridEnv(scenario, 2, seed=7)
    obs = original.reset()
    policy = GreedyPolicy(original, seed=7)
    for _ in range(25):
        obs = original.step(policy())[0]
    with np.load(DATA / f"snapshot_format1_{kind}.npz") as stored:
        format_1 = dict(stored)
    assert "_positions" in format_1 and "format" not in format_1
    now = original.snapshot()
    for name in SNAPSHOT_FIELDS:  # the same state, bit for bit (format 1: "_" + name, but "neighbours")
        np.testing.assert_array_equal(now[name], format_1.get(f"_{name}", format_1.get(name)), err_msg=name)
    expected_obs = obs.copy()
    actions, expected = greedy_outputs(original, 30)

    restored = GridEnv(scenario, 2, seed=12345)
    np.testing.assert_array_equal(restored.restore(format_1), expected_obs)
    assert_same_outputs(expected, outputs(restored, actions))
