"""Stored episodes replayed into recurrent chunks (marl.offline.ExpertChunks): the observations are the ones
the environment gave while recording (every channel, neighbour lists), chunks come as MAPPO's update sees
them, and a store the simulator does not reproduce is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import memory
import scenarios
from marl.buffers import map_state
from marl.offline import ChunkConfig, ExpertChunks
from sim.baselines import GreedyPolicy, RandomPolicy
from sim.env import GridEnv
from sim.episodes import EpisodeStoreError, EpisodeWriter, Recorder
from tests.sim.episode_data import SCENARIO, synthetic_episode, write_episode

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# lifelong, every extra channel, neighbour lists, map sizes drawn per episode
LIFELONG = """
name: offline-lifelong
map: {generator: random, width: 9, height: 9, density: 0.2}
agents: {count: 6}
dynamics: {collision_system: soft, on_target: restart, max_episode_steps: 21}
observation: {radius: 2, channels: [obstacles, agents, goal, path, other_goals], neighbours: 3}
variants: {key: map.width, values: [7, 9, 12]}
"""
# episodes of different lengths (finish), POGEMA's occupancy bug (seen only by replaying the dynamics)
FINISH = """
name: offline-finish
map: {generator: random, width: 8, height: 8, density: 0.2}
agents: {count: 4}
dynamics: {collision_system: soft, on_target: finish, max_episode_steps: 30, pogema_bugs: true}
observation: {radius: 3, channels: [obstacles, agents, goal, path]}
"""


def record(scenario, path: Path, num_envs: int, seed: int, expert_labels: bool = False):
    """Greedy play (or, with expert_labels, random play labelled by greedy) of one episode per env, recorded;
    returns what the env showed at every step: {episode seed: dict of (T, N, ...) arrays}."""
    env = GridEnv(scenario, num_envs, seed=seed, auto_reset=False, obs_dtype=np.uint8)
    greedy, rand = GreedyPolicy(env, seed=seed), RandomPolicy(env, seed=seed)
    seen: dict[str, list] = {name: [] for name in ("obs", "neighbours", "actions", "labels", "active")}
    with Recorder(env, path, expert_labels=expert_labels) as recorder:
        obs = recorder.reset()
        seeds = env.episode_seeds.copy()
        lengths = np.zeros(num_envs, dtype=np.int64)  # an episode's steps, once it has ended
        while not lengths.all():
            labels = greedy().copy()
            actions = rand().copy() if expert_labels else labels
            for name, value in (
                ("obs", obs),
                ("neighbours", env.neighbours),
                ("actions", actions),
                ("labels", labels),
                ("active", env.active),
            ):
                seen[name].append(np.array(value, copy=True))
            step = recorder.step(actions, expert_actions=labels) if expert_labels else recorder.step(actions)
            obs = step[0]
            ended = np.array([m is not None for m in step[4]["metrics"]])
            lengths[ended & (lengths == 0)] = len(seen["obs"])
    return {
        int(seed): {name: np.stack(values)[: lengths[e], e] for name, values in seen.items()}
        for e, seed in enumerate(seeds)
    }


def replayed(dataset: ExpertChunks) -> dict[int, dict[str, np.ndarray]]:
    """Every episode's chunks joined back along time: {episode seed: dict of (T_padded, N, ...)}."""
    out: dict[int, dict[str, list]] = {}
    for batch in dataset.batches():
        seeds = [episode.info.seed for episode in batch]
        for chunk in dataset.replay(batch):
            for e, seed in enumerate(seeds):
                parts = out.setdefault(seed, {})
                for name, tensor in chunk.items():
                    if name != "first":
                        parts.setdefault(name, []).append(tensor[:, e].numpy())
    return {seed: {name: np.concatenate(v) for name, v in parts.items()} for seed, parts in out.items()}


@pytest.mark.parametrize("text,chunk_length", [(LIFELONG, 8), (FINISH, 5)])
def test_replayed_chunks_hold_exactly_what_the_environment_showed(tmp_path, text, chunk_length):
    scenario = scenarios.loads(text)
    live = record(scenario, tmp_path / "store.zarr", num_envs=5, seed=3)
    dataset = ExpertChunks([tmp_path / "store.zarr"], ChunkConfig(chunk_length, lanes=3, seed=1))
    chunks = replayed(dataset)
    assert sorted(chunks) == sorted(live)
    lengths = {len(episode["actions"]) for episode in live.values()}
    if text == FINISH:
        assert len(lengths) > 1, "the finish scenario must give episodes of different lengths"
    for seed, want in live.items():
        got, steps = chunks[seed], len(want["actions"])
        assert len(got["obs"]) % chunk_length == 0 and len(got["obs"]) >= steps
        np.testing.assert_array_equal(got["obs"][:steps], want["obs"])
        np.testing.assert_array_equal(got["labels"][:steps], want["actions"])
        np.testing.assert_array_equal(got["actions"][:steps], want["actions"])
        np.testing.assert_array_equal(got["active"][:steps], want["active"])
        assert not got["active"][steps:].any(), "steps past an episode's end are inactive"
        assert got["reset"][0].all() and not got["reset"][1:].any()
        if scenario.observation.neighbours:
            np.testing.assert_array_equal(got["neighbours"][:steps], want["neighbours"])
        else:
            assert "neighbours" not in got


def test_expert_labels_are_the_targets_and_the_executed_actions_are_replayed(tmp_path):
    scenario = scenarios.loads(LIFELONG)
    live = record(scenario, tmp_path / "dagger.zarr", num_envs=4, seed=5, expert_labels=True)
    chunks = replayed(ExpertChunks([tmp_path / "dagger.zarr"], ChunkConfig(7, lanes=4)))
    for seed, want in live.items():
        steps = len(want["actions"])
        assert (want["labels"] != want["actions"])[want["active"]].any()
        np.testing.assert_array_equal(chunks[seed]["labels"][:steps], want["labels"])
        np.testing.assert_array_equal(chunks[seed]["actions"][:steps], want["actions"])
        np.testing.assert_array_equal(chunks[seed]["obs"][:steps], want["obs"])


def test_batches_cover_every_episode_once_per_epoch_one_scenario_each(tmp_path):
    store = tmp_path / "store.zarr"
    record(scenarios.loads(LIFELONG), store, num_envs=7, seed=1)  # writer 0
    record(scenarios.loads(FINISH), store, num_envs=5, seed=2)  # writer 1
    dataset = ExpertChunks([store], ChunkConfig(4, lanes=3, seed=9))
    orders = []
    for epoch in (0, 1, 0):
        dataset.set_epoch(epoch)
        batches = dataset.batches()
        assert all(1 <= len(batch) <= 3 for batch in batches)
        for batch in batches:
            assert len({(e.scenario_yaml, e.info.agents) for e in batch}) == 1
        ids = [e.info.id for batch in batches for e in batch]
        assert sorted(ids) == sorted(e.info.id for e in dataset.episodes) and len(ids) == 12
        orders.append(ids)
    assert orders[0] == orders[2] and orders[0] != orders[1]
    kept = ExpertChunks([store], keep=lambda _store, info: info.writer_id == 1)
    assert {e.info.writer_id for e in kept.episodes} == {1} and len(kept.episodes) == 5


def test_chunks_unrolled_with_carried_memory_equal_one_unroll_over_the_episodes(tmp_path):
    """Truncated BPTT as a trainer does it: the memory carried from chunk to chunk of a batch gives exactly
    the logits of one unroll over the whole episodes (chunk order, reset masks and `first` are right)."""
    scenario = scenarios.loads(LIFELONG)
    record(scenario, tmp_path / "store.zarr", num_envs=4, seed=7)
    dataset = ExpertChunks([tmp_path / "store.zarr"], ChunkConfig(6, lanes=4))
    torch.manual_seed(0)
    policy = memory.make_policy("srmt", (5, 5, 5), 5, preset="bottleneck", scope="local")
    batch = max(dataset.batches(), key=len)  # a batch holds one variant's episodes
    assert len(batch) >= 2  # memory is carried for several episodes side by side
    chunks = list(dataset.replay(batch))
    assert [bool(chunk["first"]) for chunk in chunks] == [True] + [False] * (len(chunks) - 1)
    whole = {name: torch.cat([chunk[name] for chunk in chunks]) for name in ("obs", "reset", "neighbours")}
    active = torch.cat([chunk["active"] for chunk in chunks])
    with torch.no_grad():
        E, N = active.shape[1:]
        expected, _, _ = policy.unroll(
            whole["obs"], policy.initial_state(E, N), whole["reset"], whole["neighbours"], active
        )
        pieces, state = [], None
        for chunk in chunks:
            if chunk["first"]:
                state = policy.initial_state(E, N)
            logits, _, state = policy.unroll(
                chunk["obs"], state, chunk["reset"], chunk["neighbours"], chunk["active"]
            )
            state = map_state(torch.Tensor.detach, state)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces)[active], expected[active], rtol=1e-5, atol=1e-5)


def test_a_store_the_simulator_does_not_reproduce_is_refused(tmp_path):
    # synthetic episodes: random positions no simulation produces
    writer = EpisodeWriter(tmp_path / "synthetic.zarr", scenario=SCENARIO, flush_every=4)
    write_episode(writer, synthetic_episode(0, 6, SCENARIO.agents.count), seed=0)
    writer.close()
    with pytest.raises(EpisodeStoreError, match="replayed") as info:
        list(ExpertChunks([tmp_path / "synthetic.zarr"]))
    assert "\n" not in str(info.value) and "synthetic.zarr" in str(info.value)
    # a real episode whose actions were changed after one step: the replay parts from the stored positions
    scenario = scenarios.loads(FINISH)
    record(scenario, tmp_path / "real.zarr", num_envs=1, seed=4)
    episode = ExpertChunks([tmp_path / "real.zarr"]).episodes[0]
    stored = episode.store[episode.info.id]
    actions = stored.actions.copy()
    moved = np.flatnonzero((stored.positions[1] != stored.positions[0]).any(axis=1))
    actions[0, moved[0]] = 0  # the agent stays instead of moving
    tampered = EpisodeWriter(tmp_path / "tampered.zarr", scenario=scenario, flush_every=4)
    open_episode = tampered.begin_episode(stored.obstacles, stored.info.agents, seed=stored.info.seed)
    for t in range(stored.info.steps):
        open_episode.record_step(
            stored.positions[t], stored.goals[t], stored.active[t], actions[t], stored.rewards[t]
        )
    open_episode.finish(stored.info.metrics)
    tampered.close()
    with pytest.raises(EpisodeStoreError, match="step 1: the replayed positions differ"):
        list(ExpertChunks([tmp_path / "tampered.zarr"]))
