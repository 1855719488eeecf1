"""Windows of stored episodes as a torch Dataset: the right slices, observations and returns-to-go."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from marl.offline import EpisodeWindows, WindowConfig, returns_to_go
from sim.episodes import EpisodeWriter, observe
from tests.sim.episode_data import SCENARIO, synthetic_episode, write_episode

STEPS = (12, 5, 20)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store.zarr"
    writer = EpisodeWriter(path, scenario=SCENARIO, flush_every=8)
    for seed, steps in enumerate(STEPS):
        write_episode(writer, synthetic_episode(seed, steps, 4), seed)
    return path


@settings(max_examples=30)
@given(rewards=st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=20), gamma=st.floats(0, 1))
def test_returns_to_go_is_the_discounted_sum_of_future_rewards(rewards, gamma):
    r = np.array(rewards, dtype=np.float32)[:, None]
    expected = [sum(gamma**k * float(x) for k, x in enumerate(r[t:, 0])) for t in range(len(r))]
    np.testing.assert_allclose(returns_to_go(r, gamma)[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_windows_cover_every_long_enough_episode(store):
    dataset = EpisodeWindows(store, WindowConfig(window=6, stride=3, radius=2))
    expected = [("0/0", s) for s in (0, 3, 6)] + [("0/2", s) for s in (0, 3, 6, 9, 12)]
    assert dataset.index == expected
    assert dataset.skipped == ["0/1"]


def test_item_holds_rebuilt_observations_and_stored_steps(store):
    dataset = EpisodeWindows(store, WindowConfig(window=6, stride=3, radius=2, gamma=0.9))
    item = dataset[dataset.index.index(("0/2", 9))]
    episode = synthetic_episode(2, 20, 4)
    assert item["observations"].shape == (6, 4, 3, 5, 5) and item["observations"].dtype == torch.float32
    for w, t in enumerate(range(9, 15)):
        want = observe(episode.obstacles, episode.positions[t], episode.goals[t], episode.active[t], 2)
        np.testing.assert_array_equal(item["observations"][w].numpy(), want)
    np.testing.assert_array_equal(item["actions"].numpy(), episode.actions[9:15])
    np.testing.assert_array_equal(item["active"].numpy(), episode.active[9:15])
    np.testing.assert_allclose(item["returns_to_go"].numpy(), returns_to_go(episode.rewards, 0.9)[9:15])
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["actions"].shape == (3, 6, 4) and batch["actions"].dtype == torch.int64
