"""Offline data: stored episodes replayed in the simulator and cut into recurrent chunks, as a torch
IterableDataset (behaviour cloning and DAgger, `marl.imitation`).

A store keeps a few bytes per agent-step (positions, goals, actions: sim/episodes.py), not observations. The
observations are rebuilt by replaying each episode in `sim.GridEnv` from its stored scenario and episode
seed with its stored actions, so they are exactly what the environment gave the agents: every channel of
the scenario (`path`, `other_goals`, ...), the neighbour lists of a local memory scope, and whatever the
simulator computes beyond the stored state (the ring of obstacles around the map, POGEMA's occupancy bug).
The replay is checked against the stored map, positions, goals and active flags step by step: a store that
the simulator does not reproduce is refused instead of being trained on with wrong observations. It lives
in marl/ because sim/ never imports torch.

Chunks come as MAPPO's update sees them (marl/train.py): all agents of an environment together (SRMT's
memory pool spans them), `chunk_length` steps, time-major (L, E, N, ...), reset masks at episode starts.
E episodes of one scenario (a batch) are replayed side by side and their chunks come in time order, so a
trainer carries the memory from one chunk into the next (truncated BPTT) and starts from
`policy.initial_state(E, N)` at a batch's first chunk (`first`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset

from scenarios import Scenario
from sim import episodes
from sim.episodes import Episode, EpisodeInfo, EpisodeStore, EpisodeStoreError

StoreLike = EpisodeStore | str | os.PathLike[str]


@dataclass(frozen=True)
class ChunkConfig:
    """How stored episodes are batched and cut.

    chunk_length: steps per chunk (MAPPO's `chunk_length`); lanes: episodes replayed side by side in one
    batch (the E axis; episodes are grouped by scenario and agent count, a group's last batch may be
    smaller); seed: the shuffling seed (with the epoch: `set_epoch`); shuffle: random batch composition and
    order (otherwise store order).
    """

    chunk_length: int = 8
    lanes: int = 16
    seed: int = 0
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.chunk_length < 1 or self.lanes < 1:
            raise ValueError(f"chunk_length and lanes must be >= 1, got {self.chunk_length}, {self.lanes}")


@dataclass(frozen=True)
class StoredEpisode:
    """One episode of one store, with the stored scenario's YAML (episodes are batched by it)."""

    store: EpisodeStore
    info: EpisodeInfo
    scenario_yaml: str


class ExpertChunks(IterableDataset):
    """Recurrent chunks of the episodes of one or more stores, with the observations replayed.

    Item (a dict of tensors; L = chunk_length, E = episodes in the batch, N = agents, K = neighbours):
      obs (L, E, N, C, F, F) uint8: the scenario's observation (the same 0/1 values as float32)
      labels (L, E, N) int64: the expert's action (`expert_actions` when the store has them: the learner
        acted and the expert labelled, DAgger; else the stored action: the expert acted)
      actions (L, E, N) int64: the action taken (0 past an episode's end)
      active (L, E, N) bool: the agent acted at this step (False past an episode's end)
      reset (L, E, N) bool: the observation starts an episode
      rewards (L, E, N) float32
      neighbours (L, E, N, K) int32, only when the scenario has neighbour lists
      first () bool: the chunk starts a new batch of episodes

    `keep(store, info)` selects episodes; a damaged episode is reported on stderr and left out (the store's
    `skipped` lists it). Use with `DataLoader(dataset,
    batch_size=None)` or iterate it directly. `set_epoch(k)` reshuffles (every epoch its own order,
    reproducible from the seed).
    """

    def __init__(
        self,
        stores: Sequence[StoreLike],
        config: ChunkConfig | None = None,
        keep: Callable[[EpisodeStore, EpisodeInfo], bool] | None = None,
    ) -> None:
        self.config = config or ChunkConfig()
        self.episodes: list[StoredEpisode] = []
        for source in stores:
            store = source if isinstance(source, EpisodeStore) else episodes.open(source)
            chosen = [info.id for info in store if keep is None or keep(store, info)]
            # episodes whose arrays do not match their attributes are reported and left out (store.skipped)
            for episode in store.episodes(chosen):
                self.episodes.append(StoredEpisode(store, episode.info, episode.scenario_yaml))
        self.epoch = 0
        self._scenarios: dict[str, Scenario] = {}

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for epoch `epoch` (the same epoch gives the same batches in the same order)."""
        self.epoch = epoch

    @property
    def agent_steps(self) -> int:
        """Agent-steps in the selected episodes (active or not)."""
        return sum(e.info.steps * e.info.agents for e in self.episodes)

    def batches(self) -> list[list[StoredEpisode]]:
        """This epoch's batches: episodes of one scenario and agent count, at most `lanes` each."""
        rng = np.random.default_rng([self.config.seed, self.epoch])
        groups: dict[tuple[str, int], list[StoredEpisode]] = {}
        for episode in self.episodes:
            key = (episode.scenario_yaml, episode.info.agents)
            groups.setdefault(key, []).append(episode)
        batches = []
        for members in groups.values():
            order = rng.permutation(len(members)) if self.config.shuffle else np.arange(len(members))
            lanes = self.config.lanes
            batches.extend([members[i] for i in order[k : k + lanes]] for k in range(0, len(order), lanes))
        if self.config.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.batches():
            yield from self.replay(batch)

    def _scenario(self, episode: Episode) -> Scenario:
        text = episode.scenario_yaml
        if text not in self._scenarios:
            self._scenarios[text] = episode.scenario
        return self._scenarios[text]

    def replay(self, batch: list[StoredEpisode]) -> Iterator[dict[str, torch.Tensor]]:
        """Replay the batch's episodes side by side and yield their chunks in time order."""
        from sim.env import GridEnv  # importing the simulator compiles its kernels: only when replaying

        stored = [e.store[e.info.id] for e in batch]
        for episode in stored:
            if episode.info.seed is None:
                raise EpisodeStoreError(f"{episode.path}: no episode seed stored; it cannot be replayed")
        scenario = self._scenario(stored[0])
        lengths = np.array([e.info.steps for e in stored])
        env = GridEnv(scenario, len(stored), auto_reset=False, obs_dtype=np.uint8, num_threads=1)
        obs = env.reset(episode_seeds=np.array([e.info.seed for e in stored], dtype=np.int64))
        _check_maps(env, stored)
        E, N, L = env.num_envs, env.num_agents, self.config.chunk_length
        steps = -(-int(lengths.max()) // L) * L
        actions = _stacked(stored, steps, lambda e: e.actions, fill=0)  # (T, E, N)
        labels = _stacked(stored, steps, _labels, fill=0)
        rewards = _stacked(stored, steps, lambda e: e.rewards, fill=0.0)
        active = _stacked(stored, steps, lambda e: e.active, fill=False)
        positions = _stacked(stored, steps, lambda e: e.positions, fill=-1)  # (T, E, N, 2)
        goals = _stacked(stored, steps, lambda e: e.goals, fill=-1)
        with_neighbours = scenario.observation.neighbours > 0
        for start in range(0, steps, L):
            chunk = {
                "obs": np.empty((L, *obs.shape), dtype=np.uint8),
                "reset": np.zeros((L, E, N), dtype=bool),
            }
            if with_neighbours:
                chunk["neighbours"] = np.empty((L, *env.neighbours.shape), dtype=np.int32)
            for i, t in enumerate(range(start, start + L)):
                live = t < lengths  # (E,)
                _check_step(env, stored, live, t, positions[t], goals[t], active[t])
                chunk["obs"][i] = obs
                chunk["reset"][i] = t == 0
                if with_neighbours:
                    chunk["neighbours"][i] = env.neighbours
                obs = env.step(actions[t])[0]
            window = slice(start, start + L)
            yield {
                "obs": torch.from_numpy(chunk["obs"]),
                "labels": torch.from_numpy(labels[window].astype(np.int64)),
                "actions": torch.from_numpy(actions[window].astype(np.int64)),
                "active": torch.from_numpy(active[window]),
                "reset": torch.from_numpy(chunk["reset"]),
                "rewards": torch.from_numpy(rewards[window].astype(np.float32)),
                "first": torch.tensor(start == 0),
                **({"neighbours": torch.from_numpy(chunk["neighbours"])} if with_neighbours else {}),
            }


def _labels(episode: Episode) -> np.ndarray:
    labels = episode.expert_actions
    return episode.actions if labels is None else labels


def _stacked(
    stored: list[Episode], steps: int, read: Callable[[Episode], np.ndarray], fill: float
) -> np.ndarray:
    """(steps, E, N, ...) of one per-step array of every episode, `fill` past an episode's end."""
    first = read(stored[0])
    out = np.full((steps, len(stored), *first.shape[1:]), fill, dtype=first.dtype)
    for e, episode in enumerate(stored):
        values = read(episode)
        out[: len(values), e] = values
    return out


def _check_maps(env, stored: list[Episode]) -> None:
    for e, episode in enumerate(stored):
        height, width = (int(v) for v in env.map_shapes[e])
        if not np.array_equal(env.obstacles[e, :height, :width], episode.obstacles):
            raise EpisodeStoreError(
                f"{episode.path}: the replayed map differs from the stored one (seed {episode.info.seed}); "
                "the store was written by another simulator or scenario version"
            )


def _check_step(
    env,
    stored: list[Episode],
    live: np.ndarray,
    t: int,
    positions: np.ndarray,
    goals: np.ndarray,
    active: np.ndarray,
) -> None:
    """The replayed state of the live episodes equals the stored one; else a one-line EpisodeStoreError."""
    if not live.any():
        return
    for name, want, have in (
        ("positions", positions, env.positions),
        ("goals", goals, env.goals),
        ("active flags", active, env.active),
    ):
        differs = (want[live] != have[live]).reshape(int(live.sum()), -1).any(axis=1)
        if differs.any():
            episode = stored[int(np.flatnonzero(live)[np.argmax(differs)])]
            raise EpisodeStoreError(
                f"{episode.path}: step {t}: the replayed {name} differ from the stored ones; the store "
                "was written by another simulator or scenario version"
            )
