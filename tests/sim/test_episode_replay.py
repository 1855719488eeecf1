"""Recording a batched GridEnv and replaying the store: identical episodes verify, tampered ones don't."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import zarr

import scenarios
from gridswarm.cli import main
from sim import episodes
from sim.env import GridEnv
from sim.episodes import Recorder, replay

SCENARIO_YAML = """
name: recorded
map: {{generator: random, width: 9, height: 7, density: 0.25}}
agents: {{count: 5}}
dynamics: {{max_episode_steps: {steps}, collision_system: {collisions}, on_target: {on_target}}}
"""


def record(
    path, collisions: str, on_target: str, num_envs: int = 3, steps: int = 40, seed: int = 7
) -> Recorder:
    scenario = scenarios.loads(SCENARIO_YAML.format(steps=16, collisions=collisions, on_target=on_target))
    env = GridEnv(scenario, num_envs=num_envs, seed=seed)
    rng = np.random.default_rng(seed)
    with Recorder(env, path, policy="random", flush_every=5) as recorder:
        recorder.reset()
        for _ in range(steps):
            recorder.step(rng.integers(0, 5, (num_envs, 5)))
    return recorder


@pytest.mark.parametrize(
    ("collisions", "on_target"), [("soft", "finish"), ("priority", "restart"), ("block_both", "nothing")]
)
def test_recorded_episodes_replay_identically(tmp_path, collisions, on_target):
    recorder = record(tmp_path / "s.zarr", collisions, on_target)
    store = episodes.open(tmp_path / "s.zarr")
    assert store.ids() == recorder.finished_ids and len(store) >= 3
    assert store.incomplete == []  # episodes still running at close are discarded
    for info in store:
        episode = store[info.id]
        assert dataclasses.replace(episode.scenario, source=None) == dataclasses.replace(
            recorder.env.scenario, source=None
        )
        assert replay(episode) == []
        assert episode.positions[0].tolist() != episode.positions[-1].tolist() or info.steps == 1


def test_recorder_stores_what_the_env_showed(tmp_path):
    scenario = scenarios.loads(SCENARIO_YAML.format(steps=6, collisions="soft", on_target="finish"))
    env = GridEnv(scenario, num_envs=2, seed=3)
    seen = []
    with Recorder(env, tmp_path / "s.zarr", flush_every=4) as recorder:
        recorder.reset()
        seeds = env.episode_seeds.copy()
        for _ in range(6):
            seen.append((env.positions.copy(), env.goals.copy(), env.active.copy()))
            actions = np.full((2, 5), 2)
            rewards = recorder.step(actions)[1].copy()
            seen[-1] += (rewards,)
    store = episodes.open(tmp_path / "s.zarr")
    for env_index, episode_id in enumerate(store.ids()):
        episode = store[episode_id]
        assert episode.info.seed == seeds[env_index] and episode.info.steps == 6
        for t, (positions, goals, active, rewards) in enumerate(seen):
            np.testing.assert_array_equal(episode.positions[t], positions[env_index])
            np.testing.assert_array_equal(episode.goals[t], goals[env_index])
            np.testing.assert_array_equal(episode.active[t], active[env_index])
            np.testing.assert_array_equal(episode.rewards[t], rewards[env_index])


def tamper(path, episode_id: str, name: str, step: int, agent: int, value) -> None:
    writer, index = (int(part) for part in episode_id.split("/"))
    array = zarr.open_array(path / f"writer_{writer:03d}/episode_{index:06d}/{name}", mode="r+")
    array[step, agent] = value


def test_tampered_steps_are_reported_with_step_and_agent(tmp_path, capsys):
    path = tmp_path / "s.zarr"
    ids = record(path, "soft", "restart").finished_ids
    store = episodes.open(path)
    stored = store[ids[0]]
    row, col = stored.positions[4, 1]
    tamper(path, ids[0], "positions", 4, 1, [row, col + 1])
    tamper(path, ids[1], "rewards", 2, 3, 5.0)
    action = int(stored.actions[6, 0])
    tamper(path, ids[2], "actions", 6, 0, 0 if action else 2)
    found = {episode_id: replay(episodes.open(path)[episode_id]) for episode_id in ids[:3]}
    assert [(m.step, m.agent, m.field) for m in found[ids[0]]] == [(4, 1, "positions")]
    assert [(m.step, m.agent, m.field) for m in found[ids[1]]] == [(2, 3, "rewards")]
    assert found[ids[2]] and found[ids[2]][0].step >= 6
    assert main(["replay", str(path), ids[1], "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"episode {ids[1]} step 2 agent 3: rewards stored 5.0" in out
    assert main(["replay", str(path), ids[3], "--verify"]) == 0
