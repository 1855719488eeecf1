"""`EnvState`: every buffer of a `GridEnv` batch, as one typed value.

Sizes: E environments, N agents; map buffers sized for maps up to (H, W) (the capacity, which only grows),
padded by r = the observation radius (Hp = H + 2r, Wp = W + 2r); C observation channels, F = 2r + 1;
L listed goals, S goal-sequence length, K neighbours per agent.

Each field says what it is for (its `metadata`):
    kernel    the step kernels read or write it: `kernel_state()` hands them these fields as one StructRef
    snapshot  it is state: `snapshot()` copies it and `restored()` brings it back; the other fields are
              scratch, which a fresh buffer serves as well
The fields are the whole state: nothing else of a GridEnv is saved, and a buffer that is not a field is
not state.

Snapshot format 2 (`snapshot()`): {field name: array} for the snapshot fields, and "format": 2. Format 1
(no "format" entry) names each array "_" + field name ("neighbours" bare) and also holds the scratch
buffers and two map sizes the arrays imply ("_map_capacity", "_largest_map"); `restored` reads both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from scenarios.schema import Scenario
from sim.kernels.dynamics import COLLISION_SYSTEMS, ON_TARGET
from sim.kernels.metrics import METRIC_SLOTS
from sim.kernels.rng import STREAM_WORDS
from sim.kernels.state import StepState, step_state
from sim.kernels.tasks import group_cells, label_components

SNAPSHOT_FORMAT = 2


# The kinds of field (module docstring), as dataclass field metadata.
_KERNEL = {"kernel": True, "snapshot": True}
_STATE = {"kernel": False, "snapshot": True}
_KERNEL_SCRATCH = {"kernel": True, "snapshot": False}
_SCRATCH = {"kernel": False, "snapshot": False}


@dataclass(eq=False)
class EnvState:
    """The buffers of E environments of N agents (module docstring: sizes, field kinds, snapshots)."""

    # the batch's rules
    rules: np.ndarray = field(metadata=_STATE)  # (4,) int64: collision system, on_target, r, pogema_bugs
    channels: np.ndarray = field(metadata=_KERNEL)  # (3,) int64: obs channel of obstacles, agents, goal; -1
    # episodes
    base_seed: np.ndarray = field(metadata=_STATE)  # () int64: the seed episode seeds derive from
    episode_counts: np.ndarray = field(metadata=_STATE)  # (E,) int64: episodes started per environment
    seeds: np.ndarray = field(metadata=_STATE)  # (E,) int64: the seed of each current episode
    max_steps: np.ndarray = field(metadata=_KERNEL)  # (E,) int64: its episode limit
    elapsed: np.ndarray = field(metadata=_KERNEL)  # (E,) int64: its steps so far
    finished: np.ndarray = field(metadata=_KERNEL)  # (E,) bool: it ended at the last step
    # maps
    map_shapes: np.ndarray = field(metadata=_STATE)  # (E, 2) int32: each environment's map (height, width)
    obstacles: np.ndarray = field(metadata=_STATE)  # (E, H, W) uint8, 1 = obstacle (also beyond the map)
    padded_obstacles: np.ndarray = field(metadata=_KERNEL)  # (E, Hp, Wp) uint8: what agents see, ring of 1s
    global_obstacles: np.ndarray = field(metadata=_STATE)  # (E, Hp, Wp) float32: padded_obstacles for 'MAPF'
    occupancy: np.ndarray = field(metadata=_KERNEL)  # (E, Hp, Wp) uint8: POGEMA's agent map
    # agents
    starts: np.ndarray = field(metadata=_STATE)  # (E, N, 2) int32 (row, col), unpadded
    positions: np.ndarray = field(metadata=_KERNEL)  # (E, N, 2) int32 (row, col), unpadded
    goals: np.ndarray = field(metadata=_KERNEL)  # (E, N, 2) int32 (row, col): current goals
    actions: np.ndarray = field(metadata=_KERNEL)  # (E, N) int64: the last step's actions
    active: np.ndarray = field(metadata=_KERNEL)  # (E, N) bool: POGEMA's is_active
    was_on_goal: np.ndarray = field(metadata=_KERNEL)  # (E, N) bool: reached a goal at the last step
    rewards: np.ndarray = field(metadata=_KERNEL)  # (E, N) float32
    terminated: np.ndarray = field(metadata=_KERNEL)  # (E, N) bool
    truncated: np.ndarray = field(metadata=_KERNEL)  # (E, N) bool
    # goals after the first (sim.kernels.tasks)
    goal_mode: np.ndarray = field(metadata=_KERNEL)  # (E,) int64: GOALS_FROM_COMPONENT / _LIST / _SEQUENCE
    streams: np.ndarray = field(metadata=_KERNEL)  # (E, N, STREAM_WORDS) uint64: per-agent goal streams
    labels: np.ndarray = field(metadata=_KERNEL)  # (E, H, W) int32: component of each free cell, -1 elsewhere
    comp_cells: np.ndarray = field(metadata=_KERNEL)  # (E, H*W) int64: free cells grouped by component
    comp_offset: np.ndarray = field(metadata=_KERNEL)  # (E, H*W + 1) int64: component c's cells start
    goal_list: np.ndarray = field(metadata=_KERNEL)  # (E, L, 2) int64: shuffled possible goals
    num_listed: np.ndarray = field(metadata=_KERNEL)  # (E,) int64: valid rows of goal_list
    sequences: np.ndarray = field(metadata=_KERNEL)  # (E, N, S, 2) int64: per-agent goal sequences
    sequence_length: np.ndarray = field(metadata=_KERNEL)  # (E, N) int64: valid rows of each sequence
    sequence_index: np.ndarray = field(metadata=_KERNEL)  # (E, N) int64: the current goal's row
    # metrics (sim.kernels.metrics)
    solve_time: np.ndarray = field(metadata=_KERNEL)  # (E, N) int64: step of first arrival, -1 none yet
    counters: np.ndarray = field(metadata=_KERNEL)  # (E, 2) int64: metric step, arrivals
    metric_values: np.ndarray = field(metadata=_KERNEL)  # (E, METRIC_SLOTS) float64: last episode's
    # observations
    obs: np.ndarray = field(metadata=_KERNEL)  # (E, N, C, F, F) float32 or uint8
    observed_at: np.ndarray = field(metadata=_KERNEL)  # (E, N, 3) int32: what obs holds (kernels.observe)
    xy: np.ndarray = field(metadata=_STATE)  # (E, N, 2) int64: position - start ('POMAPF', 'MAPF')
    target_xy: np.ndarray = field(metadata=_STATE)  # (E, N, 2) int64: goal - start
    neighbours: np.ndarray = field(metadata=_STATE)  # (E, N, K) int32: nearest agents, -1 padding
    # scratch
    scratch: np.ndarray = field(metadata=_KERNEL_SCRATCH)  # (2, E, Hp, Wp) int32, -1 between steps
    next_mover: np.ndarray = field(metadata=_KERNEL_SCRATCH)  # (E, N) int32: soft collisions' lists
    moving: np.ndarray = field(metadata=_KERNEL_SCRATCH)  # (E, N) bool
    queue: np.ndarray = field(metadata=_KERNEL_SCRATCH)  # (E, 2N) int64
    bfs_queue: np.ndarray = field(metadata=_SCRATCH)  # (H*W,) int64: component labelling

    def __post_init__(self) -> None:
        self._kernel_state: StepState | None = None

    @classmethod
    def allocate(
        cls,
        rules: np.ndarray,
        channels: np.ndarray,
        max_steps: np.ndarray,
        num_agents: int,
        obs_shape: tuple[int, int, int],
        obs_dtype: np.dtype,
        num_neighbours: int,
    ) -> EnvState:
        """The buffers of len(max_steps) environments before their first episode, for maps of size 0
        (`grow_maps` sizes them); L = S = 1."""
        num_envs = len(max_steps)
        shape = (num_envs, num_agents)
        radius = int(rules[2])
        padded = (num_envs, 2 * radius, 2 * radius)
        return cls(
            rules=np.array(rules, dtype=np.int64),
            channels=np.array(channels, dtype=np.int64),
            base_seed=np.zeros((), dtype=np.int64),
            episode_counts=np.zeros(num_envs, dtype=np.int64),
            seeds=np.zeros(num_envs, dtype=np.int64),
            max_steps=np.array(max_steps, dtype=np.int64),
            elapsed=np.zeros(num_envs, dtype=np.int64),
            finished=np.zeros(num_envs, dtype=bool),
            map_shapes=np.zeros((num_envs, 2), dtype=np.int32),
            obstacles=np.ones((num_envs, 0, 0), dtype=np.uint8),
            padded_obstacles=np.zeros(padded, dtype=np.uint8),
            global_obstacles=np.zeros(padded, dtype=np.float32),
            occupancy=np.zeros(padded, dtype=np.uint8),
            starts=np.zeros((*shape, 2), dtype=np.int32),
            positions=np.zeros((*shape, 2), dtype=np.int32),
            goals=np.zeros((*shape, 2), dtype=np.int32),
            actions=np.zeros(shape, dtype=np.int64),
            active=np.zeros(shape, dtype=bool),
            was_on_goal=np.zeros(shape, dtype=bool),
            rewards=np.zeros(shape, dtype=np.float32),
            terminated=np.zeros(shape, dtype=bool),
            truncated=np.zeros(shape, dtype=bool),
            goal_mode=np.zeros(num_envs, dtype=np.int64),
            streams=np.zeros((*shape, STREAM_WORDS), dtype=np.uint64),
            labels=np.full((num_envs, 0, 0), -1, dtype=np.int32),
            comp_cells=np.zeros((num_envs, 0), dtype=np.int64),
            comp_offset=np.zeros((num_envs, 1), dtype=np.int64),
            goal_list=np.zeros((num_envs, 1, 2), dtype=np.int64),
            num_listed=np.zeros(num_envs, dtype=np.int64),
            sequences=np.zeros((*shape, 1, 2), dtype=np.int64),
            sequence_length=np.ones(shape, dtype=np.int64),
            sequence_index=np.zeros(shape, dtype=np.int64),
            solve_time=np.full(shape, -1, dtype=np.int64),
            counters=np.zeros((num_envs, 2), dtype=np.int64),
            metric_values=np.zeros((num_envs, METRIC_SLOTS), dtype=np.float64),
            obs=np.zeros((*shape, *obs_shape), dtype=obs_dtype),
            observed_at=np.full((*shape, 3), -1, dtype=np.int32),
            xy=np.zeros((*shape, 2), dtype=np.int64),
            target_xy=np.zeros((*shape, 2), dtype=np.int64),
            neighbours=np.full((*shape, num_neighbours), -1, dtype=np.int32),
            scratch=np.full((2, *padded), -1, dtype=np.int32),
            next_mover=np.full(shape, -1, dtype=np.int32),
            moving=np.zeros(shape, dtype=bool),
            queue=np.zeros((num_envs, 2 * num_agents), dtype=np.int64),
            bfs_queue=np.zeros(0, dtype=np.int64),
        )

    @property
    def capacity(self) -> tuple[int, int]:
        """(H, W): the largest map the buffers hold."""
        return (int(self.obstacles.shape[1]), int(self.obstacles.shape[2]))

    def kernel_state(self) -> StepState:
        """The kernel fields as the step kernels' StructRef (built once per set of buffers)."""
        if self._kernel_state is None:
            self._kernel_state = step_state(tuple((name, getattr(self, name)) for name in KERNEL_FIELDS))
        return self._kernel_state

    def _reallocated(self, **buffers: np.ndarray) -> None:
        """Replaces fields by new buffers (the kernels' StructRef is rebuilt at its next use)."""
        for name, buffer in buffers.items():
            setattr(self, name, buffer)
        self._kernel_state = None

    # ----------------------------------------------------------------------------------------------
    # growing buffers (every environment keeps its episode)

    def grow_maps(self, height: int, width: int) -> bool:
        """Sizes the map buffers for maps up to (height, width); they only ever grow. Every environment
        keeps its map, occupancy and components. Returns whether the buffers were reallocated."""
        capacity = self.capacity
        if height <= capacity[0] and width <= capacity[1]:
            return False
        height, width = max(height, capacity[0]), max(width, capacity[1])
        num_envs, radius = len(self.seeds), int(self.rules[2])
        padded = (num_envs, height + 2 * radius, width + 2 * radius)
        self._reallocated(
            obstacles=_grown(self.obstacles, (num_envs, height, width), fill=1),
            padded_obstacles=_grown(self.padded_obstacles, padded, fill=0),
            occupancy=_grown(self.occupancy, padded, fill=0),
            global_obstacles=_grown(self.global_obstacles, padded, fill=0),
            scratch=np.full((2, *padded), -1, dtype=np.int32),
            labels=np.full((num_envs, height, width), -1, dtype=np.int32),
            comp_cells=np.zeros((num_envs, height * width), dtype=np.int64),
            comp_offset=np.zeros((num_envs, height * width + 1), dtype=np.int64),
            bfs_queue=np.zeros(height * width, dtype=np.int64),
        )
        for env in np.flatnonzero(self.map_shapes[:, 0] > 0):
            # Flat cell indices depend on the width; relabelling the same map in row-major order gives the
            # same components in the same order, so lifelong goal draws continue unchanged.
            self.label_map(env)
        return True

    def grow_goal_list(self, length: int) -> None:
        """Room for `length` listed goals per environment (every environment keeps its list)."""
        if length > self.goal_list.shape[1]:
            self._reallocated(goal_list=_grown(self.goal_list, (len(self.seeds), length, 2), fill=0))

    def grow_sequences(self, length: int) -> None:
        """Room for goal sequences of `length` (every agent keeps its sequence)."""
        if length > self.sequences.shape[2]:
            num_envs, num_agents = self.positions.shape[:2]
            self._reallocated(sequences=_grown(self.sequences, (num_envs, num_agents, length, 2), fill=0))

    def label_map(self, env: int) -> int:
        """Labels environment `env`'s free-cell components and groups its cells; returns their count."""
        num_components = label_components(self.obstacles[env], self.labels[env], self.bfs_queue)
        group_cells(self.labels[env], num_components, self.comp_cells[env], self.comp_offset[env])
        return num_components

    # ----------------------------------------------------------------------------------------------
    # snapshots

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the snapshot fields by name, and "format" (module docstring)."""
        arrays = {name: getattr(self, name).copy() for name in SNAPSHOT_FIELDS}
        return arrays | {"format": np.array(SNAPSHOT_FORMAT, dtype=np.int64)}

    def restored(self, snapshot: dict[str, Any]) -> EnvState:
        """The state `snapshot` holds, as a new EnvState with fresh scratch buffers. Raises ValueError when
        the snapshot is not of a batch like this one: other rules or channels, or any array whose shape or
        dtype differs from what this batch has at the snapshot's map capacity and list lengths."""
        arrays = _state_arrays(snapshot)
        if set(arrays) != set(SNAPSHOT_FIELDS):
            different = sorted(set(arrays) ^ set(SNAPSHOT_FIELDS))[:3]
            raise ValueError(f"snapshot is not of a GridEnv like this one (entries differ: {different})")
        for name in ("rules", "channels"):
            if not np.array_equal(arrays[name], getattr(self, name)):
                raise ValueError(f"snapshot is not of a GridEnv like this one ({name} differ)")
        like = self.allocate(
            self.rules, self.channels, self.max_steps, self.positions.shape[1], self.obs.shape[2:],
            self.obs.dtype, self.neighbours.shape[2],
        )  # fmt: skip
        obstacles, goal_list, sequences = (arrays[name] for name in ("obstacles", "goal_list", "sequences"))
        if obstacles.ndim == 3 and goal_list.ndim == 3 and sequences.ndim == 4:
            like.grow_maps(*obstacles.shape[1:])
            like.grow_goal_list(goal_list.shape[1])
            like.grow_sequences(sequences.shape[2])
        for name in SNAPSHOT_FIELDS:
            mine, theirs = getattr(like, name), arrays[name]
            if mine.shape != theirs.shape or mine.dtype != theirs.dtype:
                raise ValueError(
                    f"snapshot is not of a GridEnv like this one ({name}: {theirs.shape} {theirs.dtype}, "
                    f"expected {mine.shape} {mine.dtype})"
                )
        return dataclasses.replace(
            like, **{name: np.array(arrays[name], copy=True) for name in SNAPSHOT_FIELDS}
        )

    def joined(
        self, parts: list[dict[str, Any]], bounds: list[tuple[int, int]], base_seeds: tuple[int, ...]
    ) -> EnvState:
        """The state of this batch from snapshots of its environments' blocks (`bounds`: each part's
        (start, stop)), each taken from a batch of those environments alone with base seed `base_seeds[k]`.
        The map and list buffers grow to the largest part's (the kernels' results do not depend on the
        capacity); the base seed stays this batch's. ValueError when a part does not fit its block."""
        if len(parts) != len(bounds):
            raise ValueError(f"snapshot has {len(parts)} parts, expected {len(bounds)} (one per variant)")
        states = []
        for k, (part, (start, stop), seed) in enumerate(zip(parts, bounds, base_seeds, strict=True)):
            alone = self.allocate(
                self.rules, self.channels, self.max_steps[start:stop], self.positions.shape[1],
                self.obs.shape[2:], self.obs.dtype, self.neighbours.shape[2],
            ).restored(part)  # fmt: skip
            if int(alone.base_seed) != seed:
                raise ValueError(f"snapshot part {k}: base seed {int(alone.base_seed)}, expected {seed}")
            states.append(alone)
        height, width = (max(state.capacity[axis] for state in states) for axis in (0, 1))
        for state in states:
            state.grow_maps(height, width)
            state.grow_goal_list(max(s.goal_list.shape[1] for s in states))
            state.grow_sequences(max(s.sequences.shape[2] for s in states))
        batch = {name: np.concatenate([getattr(s, name) for s in states]) for name in _PER_ENV_FIELDS}
        return self.restored(self.snapshot() | batch)


def scenario_rules(scenario: Scenario) -> np.ndarray:
    """The `rules` field of a batch of `scenario`."""
    dynamics = scenario.dynamics
    return np.array(
        [COLLISION_SYSTEMS[dynamics.collision_system], ON_TARGET[dynamics.on_target],
         scenario.observation.radius, int(dynamics.pogema_bugs)], dtype=np.int64,
    )  # fmt: skip


def _fields_where(kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(EnvState) if f.metadata[kind])


KERNEL_FIELDS = _fields_where("kernel")
"""The fields the step kernels take, in the order of `kernel_state`'s StructRef."""
SNAPSHOT_FIELDS = _fields_where("snapshot")
"""The fields a snapshot holds: the state."""
_PER_ENV_FIELDS = tuple(name for name in SNAPSHOT_FIELDS if name not in ("rules", "channels", "base_seed"))
_SCRATCH_FIELDS = tuple(f.name for f in dataclasses.fields(EnvState) if not f.metadata["snapshot"])
_FORMAT_1_SIZES = ("map_capacity", "largest_map")  # format 1's map sizes (obstacles' shape, the scenario's)


def _state_arrays(snapshot: dict[str, Any]) -> dict[str, np.ndarray]:
    """The snapshot's state arrays by field name, from format 1 or 2; ValueError for another format."""
    arrays = {name: np.asarray(value) for name, value in snapshot.items()}
    if "format" not in arrays:  # format 1
        arrays = {name.removeprefix("_"): value for name, value in arrays.items()}
        for name in (*_SCRATCH_FIELDS, *_FORMAT_1_SIZES):
            arrays.pop(name, None)
        return arrays
    version = arrays.pop("format")
    if version.shape != () or int(version) != SNAPSHOT_FORMAT:
        raise ValueError(f"snapshot format {version.tolist()}, expected 1 or {SNAPSHOT_FORMAT}")
    return arrays


def stacked_parts(snapshot: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The parts of a snapshot of stacked batches ("<part>/<name>" entries, `marl.envs.StackedEnvs`), in
    part order, or None for a snapshot of one batch. ValueError for parts that are not 0, 1, 2, ..."""
    if not any("/" in name for name in snapshot):
        return None
    parts: dict[int, dict[str, Any]] = {}
    for key, array in snapshot.items():
        index, _, name = key.partition("/")
        if not index.isdigit() or not name:
            raise ValueError(f"snapshot entry {key!r}: expected '<part>/<name>'")
        parts.setdefault(int(index), {})[name] = array
    if sorted(parts) != list(range(len(parts))):
        raise ValueError(f"snapshot parts {sorted(parts)[:8]}: expected 0 to {len(parts) - 1}")
    return [parts[index] for index in range(len(parts))]


def _grown(array: np.ndarray, shape: tuple[int, ...], fill: int) -> np.ndarray:
    """A new `shape` array of `array`'s dtype holding `array` in its leading corner and `fill` elsewhere."""
    grown = np.full(shape, fill, dtype=array.dtype)
    grown[tuple(slice(0, size) for size in array.shape)] = array
    return grown


class StateView:
    """A read-only attribute showing one `EnvState` buffer of the owner's `_state` (a view, not a copy)."""

    def __init__(self, doc: str, field: str | None = None) -> None:
        self.__doc__ = doc
        self.field = field

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.field = self.field or name

    @overload
    def __get__(self, instance: None, owner: type) -> StateView: ...

    @overload
    def __get__(self, instance: StateViews, owner: type | None = None) -> np.ndarray: ...

    def __get__(self, instance: StateViews | None, owner: type | None = None) -> StateView | np.ndarray:
        return self if instance is None else getattr(instance._state, self.field)

    def __set__(self, instance: StateViews, value: Any) -> None:
        raise AttributeError(f"{self.name} is a view of the environment's state: write into it, not over it")


class StateViews:
    """The live state of a batch: views of `_state`'s buffers (not copies), overwritten by the next step or
    reset."""

    _state: EnvState

    positions = StateView("(E, N, 2) int32 (row, col), unpadded.")
    goals = StateView("(E, N, 2) int32 current goals.")
    active = StateView("(E, N) bool: POGEMA's is_active.")
    obstacles = StateView(
        "(E, Hmax, Wmax) uint8, 1 = obstacle; cells beyond an environment's map are obstacles."
    )
    map_shapes = StateView("(E, 2) int32: each environment's (H, W).")
    elapsed = StateView(
        "(E,) steps of the current episode (keeps counting after the end when auto_reset is off)."
    )
    episode_seeds = StateView(
        "(E,) int64: the seed of each environment's current episode (`reset(episode_seeds=...)` replays).",
        field="seeds",
    )
    starts = StateView("(E, N, 2) int32: the start cells of the current episodes.")
    neighbours = StateView(
        "(E, N, K) int32: each agent's K nearest active agents (observation.neighbours), -1 padded."
    )
