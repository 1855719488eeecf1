"""Stored episodes checked against the simulator: `replay` re-simulates an episode from its scenario,
seed and actions and lists every difference; `observe` rebuilds POGEMA's observation from stored state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.episode_format import EpisodeStoreError, plain

if TYPE_CHECKING:
    from sim.episodes import Episode


def observe(
    obstacles: np.ndarray, positions: np.ndarray, goals: np.ndarray, active: np.ndarray, radius: int
) -> np.ndarray:
    """POGEMA's default observation rebuilt from stored state (numpy; equal to pogema's, tested).

    obstacles (H, W) uint8; positions, goals (N, 2) int; active (N,) bool -> (N, 3, F, F) float32 with
    F = 2 * radius + 1: obstacles (the map inside one ring of obstacles, free beyond), active agents
    (correct occupancy: POGEMA 1.4.0's soft-collision occupancy bug is not reproduced), and the goal
    clamped to the window's edge.
    """
    height, width = obstacles.shape
    size = 2 * radius + 1
    padded = np.zeros((height + 2 * radius, width + 2 * radius), dtype=np.float32)
    padded[radius - 1 : height + radius + 1, radius - 1 : width + radius + 1] = 1.0
    padded[radius : height + radius, radius : width + radius] = obstacles
    occupancy = np.zeros_like(padded)
    shown = positions[active.astype(bool)]
    occupancy[shown[:, 0] + radius, shown[:, 1] + radius] = 1.0
    rows, cols = positions[:, 0].astype(np.int64), positions[:, 1].astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view  # (H, W, F, F) views, windows[r, c] starts at (r, c)
    out = np.zeros((len(positions), 3, size, size), dtype=np.float32)
    out[:, 0] = windows(padded, (size, size))[rows, cols]
    out[:, 1] = windows(occupancy, (size, size))[rows, cols]
    offset = np.clip(positions.astype(np.int64) - goals, -radius, radius)  # (N, 2) agent minus goal
    out[np.arange(len(positions)), 2, radius - offset[:, 0], radius - offset[:, 1]] = 1.0
    return out


@dataclass(frozen=True)
class Mismatch:
    """One difference between a stored episode and its re-simulation."""

    episode: str
    step: int
    agent: int | None
    field: str
    stored: Any
    replayed: Any

    def __str__(self) -> str:
        who = "" if self.agent is None else f" agent {self.agent}"
        return (
            f"episode {self.episode} step {self.step}{who}: {self.field} stored {self.stored}, "
            f"replayed {self.replayed}"
        )


def _compare(
    found: list[Mismatch], episode_id: str, step: int, field: str, stored: np.ndarray, replayed: np.ndarray
) -> None:
    """Append one Mismatch per agent whose stored and replayed rows differ. stored, replayed: (N, ...)."""
    differs = (stored != replayed).reshape(len(stored), -1).any(axis=1)
    for agent in np.flatnonzero(differs):
        found.append(
            Mismatch(episode_id, step, int(agent), field, stored[agent].tolist(), replayed[agent].tolist())
        )


def replay(episode: Episode) -> list[Mismatch]:
    """Re-simulate the stored actions from the stored scenario and episode seed; every difference in the
    map, positions, goals, active flags, rewards and final metrics, in step order (empty: verified)."""
    from sim.env import GridEnv  # the simulator is only needed here; importing it compiles kernels

    info = episode.info
    if info.seed is None:
        raise EpisodeStoreError(f"{episode._path}: no episode seed stored; it cannot be replayed")
    scenario = episode.scenario
    if scenario.agents.count != info.agents:
        raise EpisodeStoreError(
            f"{episode._path}: {info.agents} agents stored, its scenario has {scenario.agents.count}"
        )
    try:
        return _replay(episode, GridEnv(scenario, num_envs=1, auto_reset=False))
    except ValueError as error:  # the simulator refuses what was stored (an action out of range, ...)
        raise EpisodeStoreError(f"{episode._path}: cannot be replayed ({error})") from None


def _replay(episode: Episode, env: Any) -> list[Mismatch]:
    info = episode.info
    env.reset(episode_seeds=np.array([info.seed], dtype=np.int64))
    found: list[Mismatch] = []
    height, width = (int(v) for v in env.map_shapes[0])
    replayed_map = env.obstacles[0, :height, :width]
    if episode.obstacles.shape != replayed_map.shape:
        return [Mismatch(info.id, 0, None, "map shape", episode.obstacles.shape, replayed_map.shape)]
    if (episode.obstacles != replayed_map).any():
        cells = np.argwhere(episode.obstacles != replayed_map)[:3].tolist()
        return [Mismatch(info.id, 0, None, "obstacles at (row, col)", cells, "different")]
    stored = {"positions": episode.positions, "goals": episode.goals, "active": episode.active}
    rewards, infos = None, {}
    for t in range(info.steps):
        for name, values in stored.items():
            _compare(found, info.id, t, name, values[t], getattr(env, name)[0])
        _, rewards, _, _, infos = env.step(episode.actions[t][None].astype(np.int64))
        _compare(found, info.id, t, "rewards", episode.rewards[t], rewards[0])
    replayed_metrics = infos.get("metrics", [None])[0] if info.steps else None
    if info.metrics and plain(replayed_metrics) != dict(info.metrics):
        found.append(
            Mismatch(info.id, info.steps - 1, None, "metrics", dict(info.metrics), plain(replayed_metrics))
        )
    return found
