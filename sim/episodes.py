"""Episodes in a Zarr v3 store: recording (batched, crash-safe) and lazy reading.

Layout of a store (a directory; Zarr v3 on the local file system)::

    STORE/                     root group, attrs {"gridswarm_episodes": {"schema_version": 1}}
      writer_000/              one group per writer, claimed with an atomic mkdir (concurrent writes into
        episode_000000/        one chunk lose data: two processes, or two MPI ranks, never share a group)
          positions (T, N, 2) int16    (row, col) of every agent *before* the step's action
          goals     (T, N, 2) int16    the current goal before the step
          active    (T, N)    bool     pogema's is_active before the step
          actions   (T, N)    int8     the action taken at step t
          rewards   (T, N)    float32  the reward received for step t
          expert_actions (T, N) int8   optional (a store written with expert labels, for imitation
                                       learning): the action an expert would have taken at step t
          obstacles (H, W)    uint8    the episode's map, 1 = obstacle
          attrs: scenario (YAML), seed, gridswarm_version, policy, metrics, steps, agents, env_index
        incomplete_000001/     an episode being written (or cut off by a crash): never listed

Step arrays are chunked along time (`flush_every` steps per chunk) and compressed with Zstd (its checksum
detects truncated chunks). Each open episode owns a step buffer of `flush_every` rows; a full buffer is
written as one whole chunk per array (one metadata rewrite per array per flush, never one per step), on
the writer's background I/O thread. An episode is written under `incomplete_K`, every file is fsynced,
and then the directory is renamed to `episode_K`: a reader sees an episode only when it is complete.
Only local file systems are supported (the rename is what makes an episode appear). The store itself is
created in a staging directory and renamed into place, so writers that start together agree on one root.

Readers skip an episode they cannot read (damaged attributes or arrays, arrays that disagree with the
attributes) and report it with one line on stderr, instead of stopping at it: `EpisodeStore.skipped`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
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
from fsio import atomic_directory, fsync_directory, fsync_tree
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
# Written only by writers made with `expert_labels=True` (DAgger: the learner acts, the expert labels).
EXPERT_LABELS = StepField("expert_actions", np.dtype(np.int8), (), -1)


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
        self._buffers = {f.name: np.empty((k, num_agents, *f.per_agent), f.dtype) for f in writer.fields}
        self._arrays: dict[str, zarr.Array] = {}  # created and used by the I/O thread only
        writer._submit(self._create, np.array(obstacles, dtype=np.uint8), attributes)

    def _create(self, obstacles: np.ndarray, attributes: dict[str, Any]) -> None:
        group = self.writer.group.create_group(self._temp_dir.name, attributes=attributes)
        group.create_array("obstacles", data=obstacles, compressors=ZstdCodec(level=3, checksum=True))
        k, n = self.writer.flush_every, self.num_agents
        for f in self.writer.fields:
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
        expert_actions: np.ndarray | None = None,
    ) -> None:
        """Copy one step into the buffer (the arguments are only read, so views into an env are fine).

        positions, goals: (N, 2) int, state before the action; active: (N,) bool; actions: (N,) int 0..4;
        rewards: (N,) float, the reward for this step; expert_actions: (N,) int 0..4, required exactly when
        the writer records expert labels.
        """
        row = self.steps - self._flushed
        buffers = self._buffers
        if ("expert_actions" in buffers) != (expert_actions is not None):
            raise ValueError(
                "expert_actions must be given exactly when the writer records expert labels "
                f"(expert_labels={'expert_actions' in buffers})"
            )
        if expert_actions is not None:
            buffers["expert_actions"][row] = expert_actions
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
    """Writes episodes into a writer group of its own in a store, creating the store if needed.

    Each writer claims a new group `writer_W` (the lowest free W, claimed with an atomic mkdir), so any
    number of processes and MPI ranks can record into one store at once; its episodes are numbered 0, 1,
    ... within the group and their ids are "W/K". `scenario`, `policy` and the GridSwarm version go into
    every episode's attributes. Several episodes may be open at once (one per environment of a batch). All
    Zarr and file work runs, in order, on one background thread so that recording costs the caller little
    more than copying into the step buffers; `wait()` blocks until everything queued is on disk, `close()`
    also stops the thread (a `with` block closes). `durable=False` skips fsync (safe against a killed
    process, not against power loss).
    `expert_labels=True` adds the per-step `expert_actions` array (`OpenEpisode.record_step`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        scenario: Scenario,
        policy: str = "",
        flush_every: int = DEFAULT_FLUSH_EVERY,
        durable: bool = True,
        expert_labels: bool = False,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.path = Path(path)
        self.flush_every = flush_every
        self.durable = durable
        self.fields = EPISODE_SCHEMA + ((EXPERT_LABELS,) if expert_labels else ())
        root = _open_root(self.path, create=True)
        self.writer_id = _claim_writer_group(self.path)
        self.directory = self.path / f"writer_{self.writer_id:03d}"
        self.group = root.create_group(self.directory.name, attributes={"writer_id": self.writer_id})
        self._common_attrs = {
            "scenario": scenarios.dump(scenario),
            "scenario_name": scenario.name,
            "policy": policy,
            "gridswarm_version": gridswarm_version(),
            "schema_version": SCHEMA_VERSION,
        }
        self._next_index = 0
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"episodes-writer-{self.writer_id}")
        self._pending: deque[Future[Any]] = deque()

    def begin_episode(
        self,
        obstacles: np.ndarray,
        num_agents: int,
        seed: int | None = None,
        env_index: int = 0,
        scenario: Scenario | None = None,
    ) -> OpenEpisode:
        """Start recording an episode on the (H, W) map `obstacles` (1 = obstacle) with `seed`; `scenario`
        replaces the writer's for this episode (the concrete variant a batch of variants plays)."""
        attributes = {
            **self._common_attrs,
            **(
                {}
                if scenario is None
                else {"scenario": scenarios.dump(scenario), "scenario_name": scenario.name}
            ),
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


def _claim_writer_group(path: Path) -> int:
    """Claim the lowest free writer number W of the store at `path` by creating `writer_W` (mkdir is atomic:
    of several writers trying one number, exactly one gets it)."""
    taken = [int(match[1]) for name in os.listdir(path) if (match := _WRITER_NAME.match(name))]
    writer_id = 0 if not taken else min(set(range(max(taken) + 2)) - set(taken))
    while True:
        try:
            os.mkdir(path / f"writer_{writer_id:03d}")
            return writer_id
        except FileExistsError:
            writer_id += 1


def _open_root(path: Path, *, create: bool) -> zarr.Group:
    """The store's root group, checked to be a GridSwarm episode store of a version we can read."""
    if create and not (path / "zarr.json").exists():
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            if not (path / "zarr.json").exists():  # not a store made by a writer that started with us
                raise EpisodeStoreError(f"{path}: exists and is not a GridSwarm episode store")
        else:
            try:
                with atomic_directory(path) as staging:
                    attributes = {STORE_KEY: {"schema_version": SCHEMA_VERSION}}
                    zarr.open_group(staging, mode="w-", zarr_format=3, attributes=attributes)
            except FileExistsError:
                pass  # another writer created the store first: open theirs
    if not path.is_dir():
        raise EpisodeStoreError(f"{path}: no such episode store")
    if not (path / "zarr.json").is_file():
        raise EpisodeStoreError(f"{path}: not a Zarr v3 store (no zarr.json)")
    try:
        root = zarr.open_group(path, mode="r+" if create else "r", zarr_format=3)
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
    """One stored episode; the arrays are read on first access, each checked against the attributes."""

    def __init__(self, store_path: Path, info: EpisodeInfo, group: zarr.Group) -> None:
        self.info = info
        self.id = info.id
        self._path = store_path / f"writer_{info.writer_id:03d}" / f"episode_{info.index:06d}"
        self._group = group

    def _array(self, name: str) -> zarr.Array:
        """The stored array `name`, its shape and dtype checked against the schema and the attributes."""
        try:
            array = self._group[name]
        except Exception as error:  # zarr raises several types for missing or damaged metadata
            raise EpisodeStoreError(
                f"{self._path / name}: missing or unreadable ({type(error).__name__}); the store is damaged"
            ) from None
        if not isinstance(array, zarr.Array):
            raise EpisodeStoreError(f"{self._path / name}: not an array; the store is damaged")
        steps, agents = self.info.steps, self.info.agents
        fields = {f.name: f for f in (*EPISODE_SCHEMA, EXPERT_LABELS)}
        if name in fields:
            field = fields[name]
            expected, dtype = (steps, agents, *field.per_agent), field.dtype
            shape_ok = tuple(array.shape) == expected
        else:  # obstacles: any (H, W) map
            expected, dtype = "(H, W)", np.dtype(np.uint8)
            shape_ok = len(array.shape) == 2 and min(array.shape) >= 1
        if not shape_ok or array.dtype != dtype:
            raise EpisodeStoreError(
                f"{self._path / name}: shape {tuple(array.shape)} {array.dtype}, expected {expected} {dtype} "
                f"({steps} steps, {agents} agents in the attributes); the store is damaged"
            )
        return array

    def validate(self) -> None:
        """Check every array's presence, shape and dtype (metadata only; chunks are checked when read)."""
        for name in (*(f.name for f in EPISODE_SCHEMA), "obstacles"):
            self._array(name)

    def _read(self, name: str) -> np.ndarray:
        array = self._array(name)
        try:
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
    def expert_actions(self) -> np.ndarray | None:
        """(T, N) int8: the expert's action at each step, when the store was written with expert labels
        (else None)."""
        return self._read("expert_actions") if "expert_actions" in self._group.array_keys() else None

    @cached_property
    def obstacles(self) -> np.ndarray:
        """(H, W) uint8, 1 = obstacle."""
        return self._read("obstacles")

    @property
    def path(self) -> Path:
        """The episode's directory inside the store."""
        return self._path

    @property
    def scenario_yaml(self) -> str:
        text = self._group.attrs.get("scenario")
        if not isinstance(text, str):
            raise EpisodeStoreError(f"{self._path}: no stored scenario (attribute 'scenario' is not text)")
        return text

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What a complete episode's attributes hold: name -> (accepts, what was expected).
_ATTRIBUTE_CHECKS: dict[str, tuple[Any, str]] = {
    "scenario_name": (lambda v: isinstance(v, str), "text"),
    "agents": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "seed": (lambda v: v is None or (_is_int(v) and 0 <= v < 2**63), "null or an integer in [0, 2**63)"),
    "policy": (lambda v: isinstance(v, str), "text"),
    "metrics": (lambda v: isinstance(v, Mapping), "a mapping"),
    "complete": (lambda v: v is True, "true"),
    "schema_version": (lambda v: _is_int(v) and v <= SCHEMA_VERSION, f"an integer <= {SCHEMA_VERSION}"),
}


class EpisodeStore:
    """A read-only view of a store: `len(store)`, iteration over `EpisodeInfo`, `store[id] -> Episode`.

    An episode whose attributes cannot be read, or a writer entry that is not a group, is left out and
    reported: one line on stderr and one entry in `skipped`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._root = _open_root(self.path, create=False)
        self.skipped: list[str] = []

    def _skip(self, error: EpisodeStoreError) -> None:
        print(f"gridswarm.episodes: skipping {error}", file=sys.stderr)
        self.skipped.append(str(error))

    @cached_property
    def _writer_entries(self) -> list[tuple[str, int, list[str]]]:
        """(group name, writer id, sorted entries) of every readable writer group."""
        found = []
        for writer_name in sorted(os.listdir(self.path)):
            writer_match = _WRITER_NAME.match(writer_name)
            if not writer_match:
                continue
            try:
                entries = sorted(os.listdir(self.path / writer_name))
            except OSError as error:
                self._skip(
                    EpisodeStoreError(f"{self.path / writer_name}: not a writer group ({error.strerror})")
                )
                continue
            found.append((writer_name, int(writer_match[1]), entries))
        return found

    @cached_property
    def _groups(self) -> dict[str, tuple[EpisodeInfo, zarr.Group]]:
        found: dict[str, tuple[EpisodeInfo, zarr.Group]] = {}
        for writer_name, writer_id, entries in self._writer_entries:
            for name in entries:
                match = _EPISODE_NAME.match(name)
                if match:
                    try:
                        info, group = self._load_info(writer_name, name, writer_id, int(match[1]))
                    except EpisodeStoreError as error:
                        self._skip(error)
                        continue
                    found[info.id] = (info, group)
        return found

    def _load_info(
        self, writer_name: str, name: str, writer_id: int, index: int
    ) -> tuple[EpisodeInfo, zarr.Group]:
        where = self.path / writer_name / name
        try:
            group = self._root[f"{writer_name}/{name}"]
            attrs = dict(group.attrs)
        except Exception as error:  # zarr raises several types for missing or damaged metadata
            raise EpisodeStoreError(
                f"{where}: episode attributes unreadable ({type(error).__name__})"
            ) from None
        for key, (accepts, expected) in _ATTRIBUTE_CHECKS.items():
            if key not in attrs or not accepts(attrs[key]):
                found = repr(attrs[key])[:40] if key in attrs else "none"
                raise EpisodeStoreError(f"{where}: attribute '{key}': expected {expected}, found {found}")
        info = EpisodeInfo(
            id=f"{writer_id}/{index}",
            writer_id=writer_id,
            index=index,
            scenario_name=attrs["scenario_name"],
            agents=attrs["agents"],
            steps=attrs["steps"],
            seed=attrs["seed"],
            policy=attrs["policy"],
            metrics=dict(attrs["metrics"]),
        )
        return info, group

    @property
    def incomplete(self) -> list[str]:
        """Paths (relative to the store) of episodes cut off before they were finished."""
        return [
            f"{writer}/{name}"
            for writer, _, entries in self._writer_entries
            for name in entries
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

    def episodes(self, ids: list[str] | None = None) -> Iterator[Episode]:
        """Every episode (or those of `ids`) whose arrays match its attributes (`Episode.validate`); one
        that does not is reported and skipped."""
        for episode_id in self.ids() if ids is None else ids:
            episode = self[episode_id]
            try:
                episode.validate()
            except EpisodeStoreError as error:
                self._skip(error)
                continue
            yield episode

    def _resolve(self, episode_id: str) -> str:
        if episode_id in self._groups:
            return episode_id
        matches = [key for key in self._groups if "/" not in episode_id and key.split("/")[1] == episode_id]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(list(self._groups)[:5]) + (" ..." if len(self._groups) > 5 else "")
        why = f"is ambiguous ({', '.join(matches)})" if matches else f"not found (ids: {known or 'none'})"
        raise EpisodeStoreError(f"{self.path}: episode {episode_id[:40]!r} {why}")


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
    if info.metrics and _plain(replayed_metrics) != dict(info.metrics):
        found.append(
            Mismatch(info.id, info.steps - 1, None, "metrics", dict(info.metrics), _plain(replayed_metrics))
        )
    return found


class Recorder:
    """Wraps a `sim.GridEnv`: `reset` and `step` pass through, and every episode of every environment that
    ends is written to the store (into a writer group of its own, `EpisodeWriter`).

    The state before each step (positions, goals, active) is copied from the env's arrays into the step
    buffers, so recording costs a few array copies per step plus one chunk write every `flush_every` steps.
    With `auto_reset=False` an environment is recorded until its episode ends, then again after `reset`.
    `expert_labels=True`: every `step` also takes the expert's actions and stores them (imitation data).
    """

    def __init__(
        self,
        env: Any,
        path: str | os.PathLike[str],
        *,
        policy: str = "",
        flush_every: int = DEFAULT_FLUSH_EVERY,
        durable: bool = True,
        expert_labels: bool = False,
    ) -> None:
        self.env = env
        self.writer = EpisodeWriter(
            path,
            scenario=env.scenario,
            policy=policy,
            flush_every=flush_every,
            durable=durable,
            expert_labels=expert_labels,
        )
        self.finished_ids: list[str] = []
        self._open: list[OpenEpisode | None] = [None] * env.num_envs
        shape = env.positions.shape  # (E, N, 2)
        self._positions = np.empty(shape, np.int16)
        self._goals = np.empty(shape, np.int16)
        self._active = np.empty(shape[:2], np.bool_)

    def reset(self, seed: int | None = None, episode_seeds: np.ndarray | None = None) -> Any:
        """`env.reset(seed, episode_seeds)`; unfinished episodes are discarded and every environment starts
        a new one."""
        obs = self.env.reset(seed=seed, episode_seeds=episode_seeds)
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
            scenario=self.env.episode_scenario(index),
        )

    def step(self, actions: np.ndarray, expert_actions: np.ndarray | None = None) -> Any:
        """`env.step(actions)`, recording the step of every environment and finishing ended episodes;
        `expert_actions` (E, N): the expert's labels of this step (a recorder with `expert_labels`)."""
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
                None if expert_actions is None else expert_actions[index],
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
