"""Recording episodes into a store (`sim.episode_format`): `EpisodeWriter` owns one writer group and
writes on a background thread; `Recorder` wraps a `GridEnv` and records every episode it plays."""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

import scenarios
from fsio import fsync_directory, fsync_tree
from scenarios import Scenario
from sim.episode_format import (
    DEFAULT_FLUSH_EVERY,
    EPISODE_SCHEMA,
    EXPERT_LABELS,
    MAX_QUEUED_WRITES,
    SCHEMA_VERSION,
    WRITER_NAME,
    EpisodeStoreError,
    gridswarm_version,
    open_root,
    plain,
)


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
            "metrics": plain(dict(metrics or {})),
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
        root = open_root(self.path, create=True)
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
    taken = [int(match[1]) for name in os.listdir(path) if (match := WRITER_NAME.match(name))]
    writer_id = 0 if not taken else min(set(range(max(taken) + 2)) - set(taken))
    while True:
        try:
            os.mkdir(path / f"writer_{writer_id:03d}")
            return writer_id
        except FileExistsError:
            writer_id += 1


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
