"""Episodes in a Zarr v3 store: lazy, checked reading (`open`, `EpisodeStore`, `Episode`), and the public
names of recording (`Recorder`, `EpisodeWriter`: `sim.episode_writer`) and of replay (`replay`, `observe`:
`sim.episode_replay`). The store's layout and schema: `sim.episode_format`.

Readers skip an episode they cannot read (damaged attributes or arrays, arrays that disagree with the
attributes) and report it with one line on stderr, instead of stopping at it: `EpisodeStore.skipped`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import scenarios
from scenarios import Scenario
from sim.episode_format import (
    ATTRIBUTE_CHECKS,
    EPISODE_NAME,
    EPISODE_SCHEMA,
    EXPERT_LABELS,
    SCHEMA_VERSION,
    WRITER_NAME,
    EpisodeStoreError,
    StepField,
    open_root,
)
from sim.episode_replay import Mismatch, observe, replay
from sim.episode_writer import EpisodeWriter, OpenEpisode, Recorder

__all__ = [
    "EPISODE_SCHEMA",
    "EXPERT_LABELS",
    "SCHEMA_VERSION",
    "Episode",
    "EpisodeInfo",
    "EpisodeStore",
    "EpisodeStoreError",
    "EpisodeWriter",
    "Mismatch",
    "OpenEpisode",
    "Recorder",
    "StepField",
    "observe",
    "open",
    "replay",
]


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


class EpisodeStore:
    """A read-only view of a store: `len(store)`, iteration over `EpisodeInfo`, `store[id] -> Episode`.

    An episode whose attributes cannot be read, or a writer entry that is not a group, is left out and
    reported: one line on stderr and one entry in `skipped`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._root = open_root(self.path, create=False)
        self.skipped: list[str] = []

    def _skip(self, error: EpisodeStoreError) -> None:
        print(f"gridswarm.episodes: skipping {error}", file=sys.stderr)
        self.skipped.append(str(error))

    @cached_property
    def _writer_entries(self) -> list[tuple[str, int, list[str]]]:
        """(group name, writer id, sorted entries) of every readable writer group."""
        found = []
        for writer_name in sorted(os.listdir(self.path)):
            writer_match = WRITER_NAME.match(writer_name)
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
                match = EPISODE_NAME.match(name)
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
        for key, (accepts, expected) in ATTRIBUTE_CHECKS.items():
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
