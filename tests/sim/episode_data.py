"""Deterministic synthetic episodes for the episode-store tests (also run inside killed subprocesses)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from scenarios import AgentsSpec, MapSpec, Scenario
from sim.episodes import EpisodeWriter

SCENARIO = Scenario(name="synthetic", map=MapSpec(width=9, height=7), agents=AgentsSpec(count=5))


@dataclass(frozen=True)
class SyntheticEpisode:
    obstacles: np.ndarray  # (H, W) uint8
    positions: np.ndarray  # (T, N, 2) int16
    goals: np.ndarray  # (T, N, 2) int16
    active: np.ndarray  # (T, N) bool
    actions: np.ndarray  # (T, N) int8
    rewards: np.ndarray  # (T, N) float32
    metrics: dict[str, float]


def synthetic_episode(
    seed: int, steps: int, agents: int, height: int = 7, width: int = 9
) -> SyntheticEpisode:
    rng = np.random.default_rng(seed)
    return SyntheticEpisode(
        obstacles=(rng.random((height, width)) < 0.3).astype(np.uint8),
        positions=rng.integers(0, min(height, width), (steps, agents, 2)).astype(np.int16),
        goals=rng.integers(0, min(height, width), (steps, agents, 2)).astype(np.int16),
        active=rng.random((steps, agents)) < 0.8,
        actions=rng.integers(0, 5, (steps, agents)).astype(np.int8),
        rewards=rng.standard_normal((steps, agents)).astype(np.float32),
        metrics={"CSR": float(rng.random()), "ep_length": steps},
    )


def write_episode(writer: EpisodeWriter, episode: SyntheticEpisode, seed: int) -> str:
    steps, agents = episode.actions.shape
    open_episode = writer.begin_episode(episode.obstacles, agents, seed=seed)
    for t in range(steps):
        open_episode.record_step(
            episode.positions[t], episode.goals[t], episode.active[t], episode.actions[t], episode.rewards[t]
        )
    episode_id = open_episode.finish(episode.metrics)
    writer.wait()
    return episode_id


def crash_episode_shape(index: int) -> tuple[int, int]:
    """(steps, agents) of the index-th episode the crash writer produces."""
    return 5 + (index * 7) % 40, 1 + index % 6


def run_crash_writer(path: str) -> None:
    """Write episodes forever, announcing each finished id on stdout (the parent kills us with SIGKILL)."""
    writer = EpisodeWriter(path, scenario=SCENARIO, policy="crash-test", flush_every=4)
    index = 0
    while True:
        steps, agents = crash_episode_shape(index)
        episode_id = write_episode(writer, synthetic_episode(index, steps, agents), seed=index)
        print(episode_id, flush=True)
        index += 1


if __name__ == "__main__":
    run_crash_writer(sys.argv[1])
