"""The episode store's format: its layout, schema, attribute checks and root group, which the writer
(`sim.episode_writer`) and the reader (`sim.episodes`) share.

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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from fsio import atomic_directory

SCHEMA_VERSION = 1
STORE_KEY = "gridswarm_episodes"
DEFAULT_FLUSH_EVERY = 64
MAX_QUEUED_WRITES = 256

EPISODE_NAME = re.compile(r"^episode_(\d{6,})$")
WRITER_NAME = re.compile(r"^writer_(\d{3,})$")


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


def plain(value: Any) -> Any:
    """Tuples, mappings and numpy scalars as plain JSON-safe lists, dicts and numbers (for attributes)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_root(path: Path, *, create: bool) -> zarr.Group:
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


def _is_int(value: Any) -> bool:
    """Whether `value` is an int and not a bool (JSON attributes)."""
    return isinstance(value, int) and not isinstance(value, bool)


# What a complete episode's attributes hold: name -> (accepts, what was expected).
ATTRIBUTE_CHECKS: dict[str, tuple[Any, str]] = {
    "scenario_name": (lambda v: isinstance(v, str), "text"),
    "agents": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "seed": (lambda v: v is None or (_is_int(v) and 0 <= v < 2**63), "null or an integer in [0, 2**63)"),
    "policy": (lambda v: isinstance(v, str), "text"),
    "metrics": (lambda v: isinstance(v, Mapping), "a mapping"),
    "complete": (lambda v: v is True, "true"),
    "schema_version": (lambda v: _is_int(v) and v <= SCHEMA_VERSION, f"an integer <= {SCHEMA_VERSION}"),
}
