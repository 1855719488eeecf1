"""Episodes in a Zarr v3 store: recording (batched, crash-safe) and lazy reading.

Layout of a store (a directory; Zarr v3 on the local file system)::

    STORE/                     root group, attrs {"gridswarm_episodes": {"schema_version": 1}}
      writer_000/              one group per writer (an MPI rank writes only its own: concurrent writes
        episode_000000/        into one chunk lose data, research/training.md §5)
          positions (T, N, 2) int16    (row, col) of every agent *before* the step's action
          goals     (T, N, 2) int16    the current goal before the step
          active    (T, N)    bool     pogema's is_active before the step
          actions   (T, N)    int8     the action taken at step t
          rewards   (T, N)    float32  the reward received for step t
          obstacles (H, W)    uint8    the episode's map, 1 = obstacle
          attrs: scenario (YAML), seed, gridswarm_version, policy, metrics, steps, agents, env_index
        incomplete_000001/     an episode being written (or cut off by a crash): never listed

Step arrays are chunked along time (`flush_every` steps per chunk) and compressed with Zstd (its checksum
detects truncated chunks). Each open episode owns a step buffer of `flush_every` rows; a full buffer is
written as one whole chunk per array (one metadata rewrite per array per flush, never one per step), on
the writer's background I/O thread. An episode is written under `incomplete_K`, every file is fsynced,
and then the directory is renamed to `episode_K`: a reader sees an episode only when it is complete.
Only local file systems are supported (the rename is what makes an episode appear).
"""

from __future__ import annotations

import os
import re
import shutil
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

import scenarios
from fsio import fsync_directory, fsync_tree
from scenarios import Scenario

SCHEMA_VERSION = 1
STORE_KEY = "gridswarm_episodes"
DEFAULT_FLUSH_EVERY = 64
MAX_QUEUED_WRITES = 256

_EPISODE_NAME = re.compile(r"^episode_(\d{6,})$")
_WRITER_NAME = re.compile(r"^writer_(\d{3,})$")


class EpisodeStoreError(ValueError):
    """A store, episode or stored value that cannot be read; the message names the path and the problem."""


@dataclass(frozen=True)
class StepField:
    """One per-step array of the schema: stored as (T, N, *per_agent) of `dtype`."""

    name: str
    dtype: np.dtype
    per_agent: tuple[int, ...]
    fill: int | float | bool


EPISODE_SCHEMA: tuple[StepField, ...] = (
    StepField("positions", np.dtype(np.int16), (2,), -1),
    StepField("goals", np.dtype(np.int16), (2,), -1),
    StepField("active", np.dtype(np.bool_), (), False),
    StepField("actions", np.dtype(np.int8), (), -1),
    StepField("rewards", np.dtype(np.float32), (), np.nan),
)


def gridswarm_version() -> str:
    """The installed GridSwarm version, or "unknown" when running from an uninstalled checkout."""
    try:
        return metadata.version("gridswarm")
    except metadata.PackageNotFoundError:
        return "unknown"


def _plain(value: Any) -> Any:
    """Tuples, mappings and numpy scalars as plain JSON-safe lists, dicts and numbers (for attributes)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class OpenEpisode:
    """One episode being recorded: a step buffer whose full blocks go to the writer's I/O thread."""

    def __init__(
        self,
        writer: EpisodeWriter,
        index: int,
        obstacles: np.ndarray,
        num_agents: int,
        attributes: dict[str, Any],
    ) -> None:
        self.writer = writer
        self.index = index
        self.num_agents = num_agents
        self.steps = 0
        self._flushed = 0
        self._temp_dir = writer.directory / f"incomplete_{index:06d}"
        k = writer.flush_every
        self._buffers = {f.name: np.empty((k, num_agents, *f.per_agent), f.dtype) for f in EPISODE_SCHEMA}
        self._arrays: dict[str, zarr.Array] = {}  # created and used by the I/O thread only
        writer._submit(self._create, np.array(obstacles, dtype=np.uint8), attributes)

    def _create(self, obstacles: np.ndarray, attributes: dict[str, Any]) -> None:
        group = self.writer.group.create_group(self._temp_dir.name, attributes=attributes)
        group.create_array("obstacles", data=obstacles, compressors=ZstdCodec(level=3, checksum=True))
        k, n = self.writer.flush_every, self.num_agents
        for f in EPISODE_SCHEMA:
            self._arrays[f.name] = group.create_array(
                f.name,
                shape=(0, n, *f.per_agent),
                dtype=f.dtype,
                chunks=(k, n, *f.per_agent),
                fill_value=f.fill,
                compressors=ZstdCodec(level=1, checksum=True),
                config={"write_empty_chunks": True},
            )
        self._group = group

    def record_step(
        self,
        positions: np.ndarray,
        goals: np.ndarray,
        active: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
    ) -> None:
        """Copy one step into the buffer (the arguments are only read, so views into an env are fine).

        positions, goals: (N, 2) int, state before the action; active: (N,) bool; actions: (N,) int 0..4;
        rewards: (N,) float, the reward for this step.
        """
        row = self.steps - self._flushed
        buffers = self._buffers
        buffers["positions"][row] = positions
        buffers["goals"][row] = goals
        buffers["active"][row] = active
        buffers["actions"][row] = actions
        buffers["rewards"][row] = rewards
        self.steps += 1
        if self.steps - self._flushed == self.writer.flush_every:
            self._flush()

    def _flush(self) -> None:
        rows = self.steps - self._flushed
        if rows:
            block = {name: buffer[:rows].copy() for name, buffer in self._buffers.items()}
            self.writer._submit(self._write, self._flushed, block)
            self._flushed = self.steps

    def _write(self, start: int, block: dict[str, np.ndarray]) -> None:
        for name, array in self._arrays.items():
            rows = block[name]
            array.resize((start + len(rows), *array.shape[1:]))
            array[start : start + len(rows)] = rows

    def finish(self, metrics: Mapping[str, Any] | None = None) -> str:
        """Queue the rest and the atomic rename that makes the episode visible; returns its id ("W/K").

        The episode is in the store once `writer.wait()` (or `close()`) returns.
        """
        self._flush()
        attributes = {
            "steps": self.steps,
            "agents": self.num_agents,
            "metrics": _plain(dict(metrics or {})),
            "complete": True,
        }
        self.writer._submit(self._finalize, attributes)
        return f"{self.writer.writer_id}/{self.index}"

    def _finalize(self, attributes: dict[str, Any]) -> None:
        self._group.attrs.update(attributes)
        if self.writer.durable:
            fsync_tree(self._temp_dir)
        os.rename(self._temp_dir, self.writer.directory / f"episode_{self.index:06d}")
        if self.writer.durable:
            fsync_directory(self.writer.directory)

    def discard(self) -> None:
        """Delete the unfinished episode (e.g. when an env is reset before its episode ended)."""
        self.writer._submit(shutil.rmtree, self._temp_dir, True)


class EpisodeWriter:
    """Writes episodes into the group of one writer (e.g. one MPI rank) of a store, creating it if needed.

    `scenario`, `policy` and the GridSwarm version go into every episode's attributes. Several episodes may
    be open at once (one per environment of a batch). All Zarr and file work runs, in order, on one
    background thread so that recording costs the caller little more than copying into the step buffers;
    `wait()` blocks until everything queued is on disk, `close()` also stops the thread (a `with` block
    closes). `durable=False` skips fsync (safe against a killed process, not against power loss).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        writer_id: int = 0,
        *,
        scenario: Scenario,
        policy: str = "",
        flush_every: int = DEFAULT_FLUSH_EVERY,
        durable: bool = True,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        if writer_id < 0:
            raise ValueError(f"writer_id must be >= 0, got {writer_id}")
        self.path = Path(path)
        self.writer_id = writer_id
        self.flush_every = flush_every
        self.durable = durable
        root = _open_root(self.path, create=True)
        self.group = root.require_group(f"writer_{writer_id:03d}")
        self.group.attrs["writer_id"] = writer_id
        self.directory = self.path / f"writer_{writer_id:03d}"
        self._common_attrs = {
            "scenario": scenarios.dump(scenario),
            "scenario_name": scenario.name,
            "policy": policy,
            "gridswarm_version": gridswarm_version(),
            "schema_version": SCHEMA_VERSION,
        }
        self._next_index = _next_free_index(self.directory)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"episodes-writer-{writer_id}")
        self._pending: deque[Future[Any]] = deque()

    def begin_episode(
        self, obstacles: np.ndarray, num_agents: int, seed: int | None = None, env_index: int = 0
    ) -> OpenEpisode:
        """Start recording an episode on the (H, W) map `obstacles` (1 = obstacle) with `seed`."""
        attributes = {
            **self._common_attrs,
            "seed": None if seed is None else int(seed),
            "env_index": int(env_index),
            "complete": False,
        }
        episode = OpenEpisode(self, self._next_index, obstacles, num_agents, attributes)
        self._next_index += 1
        return episode

    def _submit(self, function: Any, *args: Any) -> None:
        # Back-pressure: if the disk is slower than the simulation, wait rather than queue unbounded memory.
        while self._pending and (self._pending[0].done() or len(self._pending) >= MAX_QUEUED_WRITES):
            self._check(self._pending.popleft())
        self._pending.append(self._io.submit(function, *args))

    def _check(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            raise EpisodeStoreError(
                f"{self.directory}: writing episodes failed: {type(error).__name__}: {error}"
            ) from error

    def wait(self) -> None:
        """Block until every queued write, rename and deletion is done; raise the first failure."""
        while self._pending:
            self._check(self._pending.popleft())

    def close(self) -> None:
        """`wait()`, then stop the I/O thread."""
        try:
            self.wait()
        finally:
            self._io.shutdown(wait=True)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _next_free_index(directory: Path) -> int:
    """One past the highest episode index in the writer's directory (complete or not): never reuse one."""
    indices = [
        int(name.split("_")[1])
        for name in os.listdir(directory)
        if _EPISODE_NAME.match(name) or name.startswith("incomplete_")
    ]
    return max(indices, default=-1) + 1


def _open_root(path: Path, *, create: bool) -> zarr.Group:
    """The store's root group, checked to be a GridSwarm episode store of a version we can read."""
    if create and not (path / "zarr.json").exists():
        if path.exists() and any(path.iterdir()):
            raise EpisodeStoreError(f"{path}: exists and is not a GridSwarm episode store")
        return zarr.open_group(
            path, mode="a", zarr_format=3, attributes={STORE_KEY: {"schema_version": SCHEMA_VERSION}}
        )
    if not path.is_dir():
        raise EpisodeStoreError(f"{path}: no such episode store")
    if not (path / "zarr.json").is_file():
        raise EpisodeStoreError(f"{path}: not a Zarr v3 store (no zarr.json)")
    try:
        root = zarr.open_group(path, mode="r" if not create else "a", zarr_format=3)
        info = root.attrs.get(STORE_KEY)
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise EpisodeStoreError(f"{path}: not a readable Zarr v3 group ({error})") from None
    if not isinstance(info, Mapping) or not isinstance(info.get("schema_version"), int):
        raise EpisodeStoreError(f"{path}: not a GridSwarm episode store (no root attribute '{STORE_KEY}')")
    if info["schema_version"] > SCHEMA_VERSION:
        raise EpisodeStoreError(
            f"{path}: schema version {info['schema_version']} is newer than this "
            f"GridSwarm reads (<= {SCHEMA_VERSION}); upgrade gridswarm"
        )
    return root


@dataclass(frozen=True)
class EpisodeInfo:
    """What `gridswarm episodes ls` shows about one episode (read from its attributes only)."""

    id: str
    writer_id: int
    index: int
    scenario_name: str
    agents: int
    steps: int
    seed: int | None
    policy: str
    metrics: Mapping[str, Any]


class Episode:
    """One stored episode; the arrays are read on first access."""

    def __init__(self, store_path: Path, info: EpisodeInfo, group: zarr.Group) -> None:
        self.info = info
        self.id = info.id
        self._path = store_path / f"writer_{info.writer_id:03d}" / f"episode_{info.index:06d}"
        self._group = group

    def _read(self, name: str) -> np.ndarray:
        try:
            array = self._group[name]
            if array.nchunks_initialized != array.nchunks:
                raise EpisodeStoreError(
                    f"{self._path / name}: {array.nchunks - array.nchunks_initialized} "
                    f"of {array.nchunks} chunks are missing; the store is damaged"
                )
            return array[...]
        except EpisodeStoreError:
            raise
        except Exception as error:  # zarr and the codecs raise many types for damaged bytes
            raise EpisodeStoreError(
                f"{self._path / name}: cannot read stored data "
                f"({type(error).__name__}: {error}); the store is damaged"
            ) from None

    @cached_property
    def positions(self) -> np.ndarray:
        """(T, N, 2) int16 (row, col) before each step's action."""
        return self._read("positions")

    @cached_property
    def goals(self) -> np.ndarray:
        """(T, N, 2) int16 current goal before each step."""
        return self._read("goals")

    @cached_property
    def active(self) -> np.ndarray:
        """(T, N) bool."""
        return self._read("active")

    @cached_property
    def actions(self) -> np.ndarray:
        """(T, N) int8."""
        return self._read("actions")

    @cached_property
    def rewards(self) -> np.ndarray:
        """(T, N) float32."""
        return self._read("rewards")

    @cached_property
    def obstacles(self) -> np.ndarray:
        """(H, W) uint8, 1 = obstacle."""
        return self._read("obstacles")

    @property
    def scenario_yaml(self) -> str:
        return str(self._group.attrs["scenario"])

    @property
    def gridswarm_version(self) -> str:
        return str(self._group.attrs.get("gridswarm_version", "unknown"))

    @property
    def scenario(self) -> Scenario:
        """The stored scenario, validated again by `scenarios.loads`."""
        try:
            return scenarios.loads(self.scenario_yaml, source=f"{self._path}[scenario]")
        except scenarios.ScenarioError as error:
            raise EpisodeStoreError(f"{self._path}: stored scenario does not load: {error}") from None


class EpisodeStore:
    """A read-only view of a store: `len(store)`, iteration over `EpisodeInfo`, `store[id] -> Episode`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._root = _open_root(self.path, create=False)

    @cached_property
    def _groups(self) -> dict[str, tuple[EpisodeInfo, zarr.Group]]:
        found: dict[str, tuple[EpisodeInfo, zarr.Group]] = {}
        for writer_name in sorted(os.listdir(self.path)):
            writer_match = _WRITER_NAME.match(writer_name)
            if not writer_match:
                continue
            for name in sorted(os.listdir(self.path / writer_name)):
                match = _EPISODE_NAME.match(name)
                if match:
                    info, group = self._load_info(writer_name, name, int(writer_match[1]), int(match[1]))
                    found[info.id] = (info, group)
        return found

    def _load_info(
        self, writer_name: str, name: str, writer_id: int, index: int
    ) -> tuple[EpisodeInfo, zarr.Group]:
        where = self.path / writer_name / name
        try:
            group = self._root[f"{writer_name}/{name}"]
            attrs = dict(group.attrs)
            info = EpisodeInfo(
                id=f"{writer_id}/{index}",
                writer_id=writer_id,
                index=index,
                scenario_name=str(attrs["scenario_name"]),
                agents=int(attrs["agents"]),
                steps=int(attrs["steps"]),
                seed=attrs["seed"],
                policy=str(attrs["policy"]),
                metrics=dict(attrs["metrics"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise EpisodeStoreError(f"{where}: episode attributes unreadable ({error})") from None
        if attrs.get("schema_version", 0) > SCHEMA_VERSION:
            raise EpisodeStoreError(
                f"{where}: schema version {attrs['schema_version']} is newer than this "
                f"GridSwarm reads (<= {SCHEMA_VERSION}); upgrade gridswarm"
            )
        return info, group

    @property
    def incomplete(self) -> list[str]:
        """Paths (relative to the store) of episodes cut off before they were finished."""
        return [
            f"{writer}/{name}"
            for writer in sorted(os.listdir(self.path))
            if _WRITER_NAME.match(writer)
            for name in sorted(os.listdir(self.path / writer))
            if name.startswith("incomplete_")
        ]

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[EpisodeInfo]:
        return iter([info for info, _ in self._groups.values()])

    def ids(self) -> list[str]:
        return list(self._groups)

    def __getitem__(self, episode_id: str) -> Episode:
        key = self._resolve(episode_id)
        info, group = self._groups[key]
        return Episode(self.path, info, group)

    def _resolve(self, episode_id: str) -> str:
        if episode_id in self._groups:
            return episode_id
        matches = [key for key in self._groups if "/" not in episode_id and key.split("/")[1] == episode_id]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(list(self._groups)[:5]) + (" ..." if len(self._groups) > 5 else "")
        why = f"is ambiguous ({', '.join(matches)})" if matches else f"not found (ids: {known or 'none'})"
        raise EpisodeStoreError(f"{self.path}: episode '{episode_id}' {why}")


def open(path: str | os.PathLike[str]) -> EpisodeStore:
    """Open a store read-only and lazily: nothing is read until episodes are listed or loaded."""
    return EpisodeStore(path)


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
    env = GridEnv(episode.scenario, num_envs=1, auto_reset=False)
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
    if info.metrics and _plain(replayed_metrics) != dict(info.metrics):
        found.append(
            Mismatch(info.id, info.steps - 1, None, "metrics", dict(info.metrics), _plain(replayed_metrics))
        )
    return found


class Recorder:
    """Wraps a `sim.GridEnv`: `reset` and `step` pass through, and every episode of every environment that
    ends is written to the store (one writer group, `writer_id`, e.g. the MPI rank).

    The state before each step (positions, goals, active) is copied from the env's arrays into the step
    buffers, so recording costs a few array copies per step plus one chunk write every `flush_every` steps.
    With `auto_reset=False` an environment is recorded until its episode ends, then again after `reset`.
    """

    def __init__(
        self,
        env: Any,
        path: str | os.PathLike[str],
        writer_id: int = 0,
        *,
        policy: str = "",
        flush_every: int = DEFAULT_FLUSH_EVERY,
        durable: bool = True,
    ) -> None:
        self.env = env
        self.writer = EpisodeWriter(
            path, writer_id, scenario=env.scenario, policy=policy, flush_every=flush_every, durable=durable
        )
        self.finished_ids: list[str] = []
        self._open: list[OpenEpisode | None] = [None] * env.num_envs
        shape = env.positions.shape  # (E, N, 2)
        self._positions = np.empty(shape, np.int16)
        self._goals = np.empty(shape, np.int16)
        self._active = np.empty(shape[:2], np.bool_)

    def reset(self, seed: int | None = None) -> Any:
        """`env.reset(seed)`; unfinished episodes are discarded and every environment starts a new one."""
        obs = self.env.reset(seed=seed)
        for index in range(self.env.num_envs):
            self._begin(index)
        return obs

    def _begin(self, index: int) -> None:
        if self._open[index] is not None:
            self._open[index].discard()
        height, width = (int(v) for v in self.env.map_shapes[index])
        self._open[index] = self.writer.begin_episode(
            self.env.obstacles[index, :height, :width],
            self.env.num_agents,
            seed=int(self.env.episode_seeds[index]),
            env_index=index,
        )

    def step(self, actions: np.ndarray) -> Any:
        """`env.step(actions)`, recording the step of every environment and finishing ended episodes."""
        np.copyto(self._positions, self.env.positions, casting="unsafe")
        np.copyto(self._goals, self.env.goals, casting="unsafe")
        np.copyto(self._active, self.env.active)
        result = self.env.step(actions)
        rewards, info = result[1], result[4]
        for index, episode in enumerate(self._open):
            if episode is None:
                continue
            episode.record_step(
                self._positions[index],
                self._goals[index],
                self._active[index],
                actions[index],
                rewards[index],
            )
            metrics = info["metrics"][index]
            if metrics is not None:
                self.finished_ids.append(episode.finish(metrics))
                self._open[index] = None
                if getattr(self.env, "auto_reset", True):
                    self._begin(index)
        return result

    def close(self) -> None:
        """Discard the episodes still running (incomplete by definition) and wait for the writes."""
        for episode in self._open:
            if episode is not None:
                episode.discard()
        self._open = [None] * len(self._open)
        self.writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
