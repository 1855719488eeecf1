"""Offline data: fixed-length windows of stored episodes as a torch Dataset (for behaviour cloning, decision
transformers, or pretraining encoders on recorded play).

It lives in marl/ because it is the first place where torch meets the simulator's data: sim/ never imports
torch, and the observations are rebuilt from stored positions and the map with `sim.episodes.observe`
(POGEMA's default 3-channel window), so a store holds a few bytes per agent-step instead of observations.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from sim import episodes
from sim.episodes import Episode, EpisodeStore, observe


@dataclass(frozen=True)
class WindowConfig:
    """How episodes are cut into windows.

    window: steps per sample; stride: steps between window starts; radius: observation radius (None: each
    episode's scenario radius); gamma: discount of the returns-to-go; cached_episodes: episodes kept in
    memory (an LRU cache) while iterating.
    """

    window: int = 16
    stride: int = 16
    radius: int | None = None
    gamma: float = 1.0
    cached_episodes: int = 8


def returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """(T, N) float32: G_t = r_t + gamma * G_{t+1}, G_T = 0 (each agent separately)."""
    result = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        result[t] = running
    return result


class EpisodeWindows(Dataset):
    """Samples of `config.window` consecutive steps from every episode of a store that is long enough.

    Item: a dict of tensors, W = window, N = agents of that episode, F = 2 * radius + 1:
    observations (W, N, 3, F, F) float32, actions (W, N) int64, rewards (W, N) float32,
    returns_to_go (W, N) float32, active (W, N) bool. Episodes shorter than the window are left out
    (`skipped` lists them), and so are episodes the store cannot read (`store.skipped` says why, and each is
    reported on stderr); batch episodes of equal agent counts together (default collate stacks).
    """

    def __init__(
        self,
        store: EpisodeStore | str | os.PathLike[str],
        config: WindowConfig | None = None,
        episode_ids: list[str] | None = None,
    ) -> None:
        self.config = config or WindowConfig()
        if self.config.window < 1 or self.config.stride < 1:
            raise ValueError(
                f"window and stride must be >= 1, got {self.config.window}, {self.config.stride}"
            )
        self.store = store if isinstance(store, EpisodeStore) else episodes.open(store)
        self.index: list[tuple[str, int]] = []
        self.skipped: list[str] = []
        for episode in self.store.episodes(episode_ids):
            steps = episode.info.steps
            if steps < self.config.window:
                self.skipped.append(episode.id)
            starts = range(0, steps - self.config.window + 1, self.config.stride)
            self.index.extend((episode.id, start) for start in starts)
        self._cache: OrderedDict[str, tuple[Episode, np.ndarray, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.index)

    def _episode(self, episode_id: str) -> tuple[Episode, np.ndarray, int]:
        if episode_id in self._cache:
            self._cache.move_to_end(episode_id)
            return self._cache[episode_id]
        episode = self.store[episode_id]
        radius = self.config.radius or episode.scenario.observation.radius
        entry = (episode, returns_to_go(episode.rewards, self.config.gamma), radius)
        self._cache[episode_id] = entry
        if len(self._cache) > self.config.cached_episodes:
            self._cache.popitem(last=False)
        return entry

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        episode_id, start = self.index[item]
        episode, rtg, radius = self._episode(episode_id)
        steps = slice(start, start + self.config.window)
        observations = np.stack(
            [
                observe(episode.obstacles, episode.positions[t], episode.goals[t], episode.active[t], radius)
                for t in range(steps.start, steps.stop)
            ]
        )  # (W, N, 3, F, F)
        return {
            "observations": torch.from_numpy(observations),
            "actions": torch.from_numpy(episode.actions[steps].astype(np.int64)),
            "rewards": torch.from_numpy(episode.rewards[steps].copy()),
            "returns_to_go": torch.from_numpy(rtg[steps].copy()),
            "active": torch.from_numpy(episode.active[steps].copy()),
        }
