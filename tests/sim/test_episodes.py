"""The Zarr episode store: round trips, several writers, crash safety and damaged or foreign stores."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.episodes as episodes
from sim.episodes import EPISODE_SCHEMA, EpisodeStoreError, EpisodeWriter
from tests.sim.episode_data import (
    SCENARIO,
    crash_episode_shape,
    synthetic_episode,
    write_episode,
)

STEP_ARRAYS = [field.name for field in EPISODE_SCHEMA]


def tree_digest(path: Path) -> str:
    """A hash of every file name and content under `path` (to prove a store was not modified)."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            file = Path(root) / name
            digest.update(str(file.relative_to(path)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def assert_episode_equal(stored: episodes.Episode, expected, seed: int) -> None:
    for name in [*STEP_ARRAYS, "obstacles"]:
        got, want = getattr(stored, name), getattr(expected, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=f"{stored.id} {name}")
    assert stored.info.seed == seed
    assert stored.info.metrics == expected.metrics
    assert (stored.info.steps, stored.info.agents) == expected.actions.shape


@settings(max_examples=12)
@given(
    steps=st.integers(1, 90),
    agents=st.integers(1, 6),
    flush_every=st.integers(8, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_keeps_every_value(tmp_path_factory, steps, agents, flush_every, seed):
    path = tmp_path_factory.mktemp("store") / "episodes.zarr"
    writer = EpisodeWriter(path, scenario=SCENARIO, policy="random", flush_every=flush_every)
    expected = synthetic_episode(seed, steps, agents)
    episode_id = write_episode(writer, expected, seed)
    store = episodes.open(path)
    assert store.ids() == [episode_id]
    stored = store[episode_id]
    assert_episode_equal(stored, expected, seed)
    assert stored.info.policy == "random" and stored.info.scenario_name == "synthetic"
    assert zarr.open_array(path / "writer_000/episode_000000/positions").chunks[0] == flush_every


def test_stored_scenario_loads_back_equal(tmp_path):
    path = tmp_path / "store.zarr"
    write_episode(EpisodeWriter(path, scenario=SCENARIO), synthetic_episode(0, 3, 5), 0)
    stored = episodes.open(path)["0/0"].scenario
    assert dataclasses.replace(stored, source=None) == SCENARIO


def test_interleaved_episodes_and_writers_keep_their_data(tmp_path):
    path = tmp_path / "store.zarr"
    writers = [EpisodeWriter(path, scenario=SCENARIO, flush_every=3) for rank in range(2)]
    data = {(rank, k): synthetic_episode(10 * rank + k, 7 + k, 3) for rank in range(2) for k in range(3)}
    open_episodes = {
        key: writers[key[0]].begin_episode(ep.obstacles, 3, seed=key[1]) for key, ep in data.items()
    }
    for t in range(9):  # steps of all six episodes interleave, as they do for batched envs
        for key, open_episode in open_episodes.items():
            ep = data[key]
            if t < ep.actions.shape[0]:
                open_episode.record_step(
                    ep.positions[t], ep.goals[t], ep.active[t], ep.actions[t], ep.rewards[t]
                )
    ids = {key: open_episode.finish(data[key].metrics) for key, open_episode in open_episodes.items()}
    for writer in writers:
        writer.close()
    store = episodes.open(path)
    assert sorted(store.ids()) == sorted(ids.values())
    for key, episode_id in ids.items():
        assert_episode_equal(store[episode_id], data[key], seed=key[1])
    assert ids[(1, 2)] == "1/2"


def test_every_writer_claims_a_group_of_its_own_and_never_reuses_an_episode_id(tmp_path):
    path = tmp_path / "store.zarr"
    first = write_episode(EpisodeWriter(path, scenario=SCENARIO), synthetic_episode(0, 4, 2), 0)
    with EpisodeWriter(path, scenario=SCENARIO) as crashed:
        abandoned = crashed.begin_episode(np.zeros((3, 3), np.uint8), 2)
        abandoned.record_step(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2, bool), np.zeros(2), np.zeros(2))
    second = write_episode(EpisodeWriter(path, scenario=SCENARIO), synthetic_episode(1, 4, 2), 1)
    store = episodes.open(path)
    assert (first, second) == ("0/0", "2/0")
    assert store.ids() == ["0/0", "2/0"]
    assert store.incomplete == ["writer_001/incomplete_000000"]
    assert store["2/0"].info.seed == 1


def test_discarded_episode_leaves_nothing(tmp_path):
    path = tmp_path / "store.zarr"
    with EpisodeWriter(path, scenario=SCENARIO) as writer:
        writer.begin_episode(np.zeros((3, 3), np.uint8), 2).discard()
    store = episodes.open(path)
    assert len(store) == 0 and store.incomplete == []


@pytest.mark.parametrize("kill_delay", [0.0, 0.013, 0.05, 0.21])
def test_sigkill_mid_write_leaves_earlier_episodes_intact(tmp_path, kill_delay):
    path = tmp_path / "store.zarr"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.sim.episode_data", str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    announced = [child.stdout.readline().strip() for _ in range(3)]
    time.sleep(kill_delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    announced += [line.strip() for line in child.stdout.read().splitlines()]
    store = episodes.open(path)
    ids = store.ids()
    assert ids[: len(announced)] == announced
    assert len(ids) <= len(announced) + 1  # at most the one finished between print and kill
    for index, episode_id in enumerate(ids):
        steps, agents = crash_episode_shape(index)
        assert_episode_equal(store[episode_id], synthetic_episode(index, steps, agents), seed=index)
    assert all(name.startswith("writer_000/incomplete_") for name in store.incomplete)


@pytest.fixture
def store_with_one_episode(tmp_path) -> Path:
    path = tmp_path / "store.zarr"
    write_episode(EpisodeWriter(path, scenario=SCENARIO, flush_every=4), synthetic_episode(3, 10, 2), 3)
    return path


def assert_one_line_error(action, *fragments: str) -> None:
    with pytest.raises(EpisodeStoreError) as caught:
        action()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_foreign_or_missing_stores_are_refused(tmp_path):
    assert_one_line_error(lambda: episodes.open(tmp_path / "nothing"), "nothing", "no such episode store")
    (tmp_path / "plain").mkdir()
    assert_one_line_error(lambda: episodes.open(tmp_path / "plain"), "plain", "no zarr.json")
    zarr.open_group(tmp_path / "other.zarr", mode="w", attributes={"made_by": "someone else"})
    before = tree_digest(tmp_path / "other.zarr")
    assert_one_line_error(lambda: episodes.open(tmp_path / "other.zarr"), "other.zarr", "not a GridSwarm")
    assert_one_line_error(
        lambda: EpisodeWriter(tmp_path / "other.zarr", scenario=SCENARIO), "not a GridSwarm"
    )
    assert tree_digest(tmp_path / "other.zarr") == before
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert_one_line_error(lambda: EpisodeWriter(tmp_path / "busy", scenario=SCENARIO), "busy", "exists")
    assert os.listdir(tmp_path / "busy") == ["notes.txt"]


def test_schema_from_the_future_is_refused_untouched(store_with_one_episode):
    meta_path = store_with_one_episode / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["gridswarm_episodes"]["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    before = tree_digest(store_with_one_episode)
    assert_one_line_error(lambda: episodes.open(store_with_one_episode), "schema version 99", "upgrade")
    assert_one_line_error(
        lambda: EpisodeWriter(store_with_one_episode, scenario=SCENARIO), "schema version 99"
    )
    assert tree_digest(store_with_one_episode) == before


def test_missing_episode_id_names_the_known_ones(store_with_one_episode):
    store = episodes.open(store_with_one_episode)
    assert_one_line_error(lambda: store["0/7"], "'0/7'", "not found", "0/0")


@pytest.mark.parametrize("damage", ["truncate", "delete", "garble"])
def test_damaged_chunk_is_reported_not_returned(store_with_one_episode, damage):
    chunk = store_with_one_episode / "writer_000/episode_000000/rewards/c/1/0"
    if damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:-5])
    elif damage == "delete":
        chunk.unlink()
    else:
        raw = bytearray(chunk.read_bytes())
        raw[-6] ^= 0xFF
        chunk.write_bytes(bytes(raw))
    before = tree_digest(store_with_one_episode)
    episode = episodes.open(store_with_one_episode)["0/0"]
    np.testing.assert_array_equal(episode.actions, synthetic_episode(3, 10, 2).actions)
    assert_one_line_error(lambda: episode.rewards, "rewards", "damaged")
    assert tree_digest(store_with_one_episode) == before
