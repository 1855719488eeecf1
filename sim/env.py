"""`GridEnv`: E environments x N agents of POGEMA 1.4.0's grid world, as arrays stepped by numba kernels.

| | |
|---|---|
| agents | N = scenario.agents.count per environment, E = num_envs environments |
| actions | int (E, N) in 0..4: stay, up (row - 1), down (row + 1), left (col - 1), right (col + 1) |
| observation 'default' | float32 (E, N, C, F, F), F = 2 radius + 1, channels: observation.channels |
| observation 'POMAPF' / 'MAPF' | dict of batched arrays with POGEMA's keys (see `GridEnv.reset`) |
| rewards | float32 (E, N): POGEMA's (1 per arrival; 'nothing': 1 to all when all are on goal) or a
  scheme of `sim.rewards` |
| terminated / truncated | bool (E, N), POGEMA's definitions; truncated at `max_episode_steps` |
| info | "metrics": list of E (None or POGEMA's metrics dict), "active": (E, N) bool, and
  "final_obs" on steps where an environment ended and was reset |

Episodes: episode k of environment e has seed SeedSequence(seed, spawn_key=(e, k)); that seed generates
the map (random maps) and the task exactly as POGEMA generates them from `GridConfig(seed=...)`.
Buffers are allocated once and written in place: the returned observations, rewards, terminated and
truncated arrays are the environment's own and are overwritten by the next `step` / `reset` (copy to keep;
never write into them: an agent's obstacle window is rewritten only when the agent moves).
Deviations from POGEMA 1.4.0 (all where POGEMA crashes or leaks state): fixed single goals with
on_target 'restart' draw later goals from the component (POGEMA raises TypeError); possible-start/goal
lists are shuffled afresh from the episode seed at every reset (POGEMA reshuffles its already shuffled
lists); a reset restarts the metric counters (POGEMA's wrappers keep counting across a mid-episode reset).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from scenarios.schema import Scenario
from sim.kernels.dynamics import COLLISION_SYSTEMS, MOVES, ON_TARGET, RESTART
from sim.kernels.metrics import METRIC_KEYS
from sim.kernels.observe import observe
from sim.kernels.rng import STREAM_WORDS, seed_streams
from sim.kernels.state import STATE_FIELDS, StepState, step_state
from sim.kernels.step import step_envs, step_envs_serial
from sim.kernels.tasks import (
    GOALS_FROM_COMPONENT,
    GOALS_FROM_LIST,
    GOALS_FROM_SEQUENCE,
    group_cells,
    label_components,
    place_agents,
)
from sim.layout import MapLayout
from sim.maps import largest_map_shape

LayoutSource = Callable[[int], MapLayout]
_CORE_CHANNELS = ("obstacles", "agents", "goal")
_INT_METRICS = frozenset({"SoC", "makespan"})
_INT32_MAX = np.iinfo(np.int32).max
_OBS_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))
_SNAPSHOT_SCALARS = ("_base_seed", "_map_capacity", "_largest_map")  # the non-array state


class TaskGenerationError(ValueError):
    """The map has too few free cells (or possible positions) for the requested agents."""


def _episode_seed(base: int, env: int, episode: int) -> int:
    """A 63-bit seed for episode `episode` of environment `env` (POGEMA accepts seeds < sys.maxsize)."""
    state = np.random.SeedSequence(base, spawn_key=(env, episode)).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


class GridEnv:
    """E environments of N agents each, POGEMA 1.4.0 semantics, stepped as arrays.

    `scenario`: a `Scenario`, or a built-in scenario name / YAML path (`scenarios.load`). `seed`: the base
    seed of all episodes (None: the scenario's seed; None there too: OS entropy). `auto_reset`: reset an
    environment as soon as its episode ends (its final observation goes to info["final_obs"]); otherwise
    it keeps simulating like POGEMA, and its metrics are reported again at every later step.
    `num_threads`: numba threads across environments (results do not depend on it); 1 steps on the
    calling thread without numba's thread pool (cheapest for small batches). `obs_dtype`: float32
    (POGEMA's) or uint8, the same 0/1 values in a quarter of the memory traffic (faster at scale).
    """

    num_actions = len(MOVES)

    def __init__(
        self,
        scenario: Scenario | str,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        auto_reset: bool = True,
        num_threads: int | None = None,
        obs_dtype: type | np.dtype = np.float32,
        _layouts: LayoutSource | None = None,
        _fixed_seed: int | None = None,
    ) -> None:
        if not isinstance(scenario, Scenario):
            from scenarios.loader import load

            scenario = load(scenario)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if np.dtype(obs_dtype) not in _OBS_DTYPES:
            raise ValueError(f"obs_dtype must be float32 or uint8, got {np.dtype(obs_dtype)}")
        self.obs_dtype = np.dtype(obs_dtype)
        self.scenario = scenario
        self.num_envs = int(num_envs)
        self.num_agents = int(scenario.agents.count)
        self.auto_reset = auto_reset
        self._num_threads = num_threads
        self._step_kernel = step_envs_serial if num_threads == 1 or num_envs == 1 else step_envs
        self._kernel_state: StepState | None = None
        self._layouts = _layouts if _layouts is not None else _scenario_layouts(scenario)
        self._fixed_seed = _fixed_seed
        self._base_seed = self._pick_base_seed(seed)
        self._episode_counts = np.zeros(self.num_envs, dtype=np.int64)
        self.radius = int(scenario.observation.radius)
        self._rules = np.array(
            [COLLISION_SYSTEMS[scenario.dynamics.collision_system], ON_TARGET[scenario.dynamics.on_target],
             self.radius, int(scenario.dynamics.pogema_bugs)], dtype=np.int64,
        )  # fmt: skip
        self._on_target = scenario.dynamics.on_target
        self._max_steps = np.full(self.num_envs, scenario.dynamics.max_episode_steps, dtype=np.int64)
        self._obs_type = scenario.observation.type
        channels = scenario.observation.channels if self._obs_type == "default" else ("obstacles", "agents")
        self._channel_names = tuple(channels)
        self._channels = np.array(
            [channels.index(name) if name in channels else -1 for name in _CORE_CHANNELS], dtype=np.int64
        )
        self._allocate_agents()
        self._map_capacity = (0, 0)
        # Sized for the largest map up front when the scenario says what it is (no growing mid-batch).
        self._largest_map = largest_map_shape(scenario) if _layouts is None else (0, 0)
        self._helpers_ready = False

    # ----------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_pogema(cls, grid_config: Any, num_envs: int = 1, pogema_bugs: bool = True) -> GridEnv:
        """The environments `pogema_v0(grid_config=grid_config)` makes: same maps, starts, goals, lifelong
        goal streams and episodes, bit for bit. A fixed `grid_config.seed` repeats one task at every reset,
        as POGEMA does; `seed=None` draws a fresh task every reset."""
        from sim.pogema_adapter import layouts_from_grid_config, scenario_from_grid_config

        scenario = scenario_from_grid_config(grid_config, pogema_bugs=pogema_bugs)
        return cls(
            scenario, num_envs, seed=None, auto_reset=True, _layouts=layouts_from_grid_config(grid_config),
            _fixed_seed=grid_config.seed,
        )  # fmt: skip

    def _pick_base_seed(self, seed: int | None) -> int:
        if seed is None:
            seed = self.scenario.seed
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return int(seed)

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """(C, F, F) of the window observation."""
        size = 2 * self.radius + 1
        return (len(self._channel_names), size, size)

    def _allocate_agents(self) -> None:
        shape = (self.num_envs, self.num_agents)
        self._positions = np.zeros((*shape, 2), dtype=np.int32)
        self._goals = np.zeros((*shape, 2), dtype=np.int32)
        self._starts = np.zeros((*shape, 2), dtype=np.int32)
        self._actions = np.zeros(shape, dtype=np.int64)
        self._active = np.zeros(shape, dtype=bool)
        self._was_on_goal = np.zeros(shape, dtype=bool)
        self._moving = np.zeros(shape, dtype=bool)
        self._rewards = np.zeros(shape, dtype=np.float32)
        self._terminated = np.zeros(shape, dtype=bool)
        self._truncated = np.zeros(shape, dtype=bool)
        self._next_mover = np.full(shape, -1, dtype=np.int32)
        self._queue = np.zeros((self.num_envs, 2 * self.num_agents), dtype=np.int64)
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._finished = np.zeros(self.num_envs, dtype=bool)
        self._seeds = np.zeros(self.num_envs, dtype=np.int64)
        self._streams = np.zeros((*shape, STREAM_WORDS), dtype=np.uint64)
        self._goal_mode = np.zeros(self.num_envs, dtype=np.int64)
        self._sequence_length = np.ones(shape, dtype=np.int64)
        self._sequence_index = np.zeros(shape, dtype=np.int64)
        self._solve_time = np.full(shape, -1, dtype=np.int64)
        self._counters = np.zeros((self.num_envs, 2), dtype=np.int64)
        self._metric_values = np.zeros((self.num_envs, 5), dtype=np.float64)
        self._obs = np.zeros((*shape, *self.obs_shape), dtype=self.obs_dtype)
        self._observed_at = np.full((*shape, 3), -1, dtype=np.int32)
        self._xy = np.zeros((*shape, 2), dtype=np.int64)
        self._target_xy = np.zeros((*shape, 2), dtype=np.int64)
        self._sequences = np.zeros((*shape, 1, 2), dtype=np.int64)
        self._goal_list = np.zeros((self.num_envs, 1, 2), dtype=np.int64)
        self._num_listed = np.zeros(self.num_envs, dtype=np.int64)
        self._map_shapes = np.zeros((self.num_envs, 2), dtype=np.int32)
        empty_padded = (self.num_envs, 2 * self.radius, 2 * self.radius)
        self._obstacles = np.ones((self.num_envs, 0, 0), dtype=np.uint8)
        self._padded_obstacles = np.zeros(empty_padded, dtype=np.uint8)
        self._occupancy = np.zeros(empty_padded, dtype=np.uint8)
        self._global_obstacles = np.zeros(empty_padded, dtype=np.float32)

    def _ensure_map_capacity(self, height: int, width: int) -> None:
        """Sizes the grid buffers for maps up to (height, width). They only ever grow, and growing keeps
        every environment's episode: its map, occupancy and components move into the new buffers, and the
        helpers (distance fields, channels, neighbours) and the kernels' state are rebuilt over them."""
        if height <= self._map_capacity[0] and width <= self._map_capacity[1]:
            return
        height, width = max(height, self._map_capacity[0]), max(width, self._map_capacity[1])
        padded = (self.num_envs, height + 2 * self.radius, width + 2 * self.radius)
        self._map_capacity = (height, width)
        self._obstacles = _grown(self._obstacles, (self.num_envs, height, width), fill=1)
        self._padded_obstacles = _grown(self._padded_obstacles, padded, fill=0)
        self._occupancy = _grown(self._occupancy, padded, fill=0)
        self._global_obstacles = _grown(self._global_obstacles, padded, fill=0)
        self._scratch = np.full((2, *padded), -1, dtype=np.int32)
        self._labels = np.full((self.num_envs, height, width), -1, dtype=np.int32)
        self._comp_cells = np.zeros((self.num_envs, height * width), dtype=np.int64)
        self._comp_offset = np.zeros((self.num_envs, height * width + 1), dtype=np.int64)
        self._bfs_queue = np.zeros(height * width, dtype=np.int64)
        for env in np.flatnonzero(self._map_shapes[:, 0] > 0):
            # Flat cell indices depend on the width; relabelling the same map in row-major order gives the
            # same components in the same order, so lifelong goal draws continue unchanged.
            self._label_map(env)
        self._helpers_ready = False
        self._kernel_state = None

    def _label_map(self, env: int) -> int:
        """Labels environment `env`'s free-cell components and groups its cells; returns their count."""
        num_components = label_components(self._obstacles[env], self._labels[env], self._bfs_queue)
        group_cells(self._labels[env], num_components, self._comp_cells[env], self._comp_offset[env])
        return num_components

    def _ensure_helpers(self) -> None:
        """Builds the optional extras of `sim` (distance fields, extra channels, reward schemes,
        neighbour lists) over the current grid buffers."""
        if self._helpers_ready:
            return
        spec = self.scenario
        self._distances = None
        if "path" in self._channel_names or spec.reward.scheme in ("directional", "directional_negative"):
            self._distance_cache()
        self._extra_channels = None
        if set(self._channel_names) - set(_CORE_CHANNELS):
            from sim.channels import ExtraChannels

            self._extra_channels = ExtraChannels(self._channel_names, self._distance_cache())
        self._shaper = None
        if spec.reward.scheme != "pogema":
            from sim.rewards import RewardShaper

            self._shaper = RewardShaper(spec.reward, self._distances, self.num_envs, self.num_agents)
        self._neighbour_finder = None
        self.neighbours = np.full(
            (self.num_envs, self.num_agents, max(spec.observation.neighbours, 0)), -1, dtype=np.int32
        )
        if spec.observation.neighbours > 0:
            from sim.neighbours import NeighbourFinder

            self._neighbour_finder = NeighbourFinder(
                self.num_agents,
                self._map_capacity,
                spec.observation.neighbours,
                spec.observation.neighbour_radius,
            )
        # whether an observation needs more than the step kernel writes (checked on every step)
        extras = (self._extra_channels, self._neighbour_finder)
        self._obs_extras = any(extra is not None for extra in extras) or self._obs_type != "default"
        self._helpers_ready = True

    # ----------------------------------------------------------------------------------------------
    # live state (views)

    @property
    def positions(self) -> np.ndarray:
        """(E, N, 2) int32 (row, col), unpadded."""
        return self._positions

    @property
    def goals(self) -> np.ndarray:
        """(E, N, 2) int32 current goals."""
        return self._goals

    @property
    def active(self) -> np.ndarray:
        """(E, N) bool: POGEMA's is_active."""
        return self._active

    @property
    def obstacles(self) -> np.ndarray:
        """(E, Hmax, Wmax) uint8, 1 = obstacle; cells beyond an environment's map are obstacles."""
        return self._obstacles

    @property
    def map_shapes(self) -> np.ndarray:
        """(E, 2) int32: each environment's (H, W)."""
        return self._map_shapes

    @property
    def elapsed(self) -> np.ndarray:
        """(E,) steps of the current episode (keeps counting after the end when auto_reset is off)."""
        return self._elapsed

    @property
    def episode_seeds(self) -> np.ndarray:
        """(E,) int64: the seed of each environment's current episode (`reset(episode_seeds=...)` replays)."""
        return self._seeds

    @property
    def starts(self) -> np.ndarray:
        """(E, N, 2) int32: the start cells of the current episodes."""
        return self._starts

    def _distance_cache(self) -> Any:
        if self._distances is None:
            from sim.distance import DistanceCache

            self._distances = DistanceCache(self._obstacles)
        return self._distances

    def distance_to_goal(
        self,
        positions: np.ndarray | None = None,
        goals: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """(E, N) int32 shortest-path cost from `positions` to `goals` (default: the live ones), from cached
        BFS distance fields (`sim.distance`)."""
        self._require_reset()
        positions = self._positions if positions is None else positions
        goals = self._goals if goals is None else goals
        return self._distance_cache().distance_to_goal(positions, goals, out=out)

    def _require_reset(self) -> None:
        if not self._helpers_ready:
            raise RuntimeError("call reset() first")

    # ----------------------------------------------------------------------------------------------
    # reset / step

    def reset(self, seed: int | None = None, episode_seeds: np.ndarray | None = None) -> Any:
        """Starts a new episode in every environment and returns the first observation.

        `seed` restarts the episode counters from that base seed; `episode_seeds` (E,) starts each
        environment from an exact episode seed (replay). Returns (E, N, C, F, F) float32 for type
        'default'; for 'POMAPF' a dict of obstacles, agents (E, N, F, F) float32, xy and target_xy
        (E, N, 2) int64 (relative to the start); 'MAPF' adds global_obstacles (E, Hp, Wp) float32 (the
        padded map), global_xy and global_target_xy (E, N, 2) int64 in padded coordinates.
        """
        if seed is not None:
            self._base_seed = self._pick_base_seed(seed)
            self._episode_counts[:] = 0
        if episode_seeds is not None:
            episode_seeds = np.asarray(episode_seeds)
            if episode_seeds.shape != (self.num_envs,):
                raise ValueError(
                    f"episode_seeds must have shape ({self.num_envs},), got {episode_seeds.shape}"
                )
        layouts = []
        for env in range(self.num_envs):
            env_seed = int(episode_seeds[env]) if episode_seeds is not None else self._next_seed(env)
            layouts.append((env_seed, self._layouts(env_seed)))
        self._ensure_map_capacity(
            max(self._largest_map[0], *(lay.shape[0] for _, lay in layouts)),
            max(self._largest_map[1], *(lay.shape[1] for _, lay in layouts)),
        )
        for env, (env_seed, layout) in enumerate(layouts):
            self._start_episode(env, env_seed, layout)
        self._finish_observation()
        return self._observation()

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advances every environment by one step; see the module docstring for what comes back."""
        if not self._helpers_ready:
            raise RuntimeError("call reset() first")
        actions = self._check_actions(actions)
        shaper = self._shaper
        if shaper is not None:
            shaper.before_step(self._positions, self._goals, self._active)
        if self._num_threads is not None and self._num_threads > 1:
            numba.set_num_threads(self._num_threads)
        state = self._kernel_state
        if state is None:
            state = self._kernel_state = self._gather_kernel_state()
        num_finished = self._step_kernel(self._rules, state, actions)
        if num_finished < 0:
            bad = actions.flat[-num_finished - 1]
            raise ValueError(f"actions must be in 0..{self.num_actions - 1}, got {bad}")
        if shaper is not None:
            shaper.shape(self._rewards, self._actions, self._positions, self._goals, out=self._rewards)
        info: dict[str, Any] = {"metrics": [None] * self.num_envs, "active": self._active.copy()}
        if num_finished:
            self._end_episodes(info)
        elif self._obs_extras:
            self._finish_observation()
        return self._observation(), self._rewards, self._terminated, self._truncated, info

    def _end_episodes(self, info: dict[str, Any]) -> None:
        """The finished environments' metrics into `info`; with auto-reset, their final observation too and
        their next episodes started."""
        ended = np.flatnonzero(self._finished)
        for env in ended:
            info["metrics"][env] = self._metrics(env)
        if self.auto_reset:
            self._finish_observation()
            info["final_obs"] = _copy_observation(self._observation())
            for env in ended:
                env_seed = self._next_seed(env)
                layout = self._layouts(env_seed)
                self._ensure_map_capacity(*layout.shape)
                self._start_episode(env, env_seed, layout)
        self._finish_observation()

    def _gather_kernel_state(self) -> StepState:
        """The step kernels' buffers (rebuilt whenever a buffer is reallocated)."""
        renamed = {"max_episode_steps": "_max_steps", "obstacles": "_padded_obstacles"}
        return step_state(tuple(getattr(self, renamed.get(name, "_" + name)) for name in STATE_FIELDS))

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        """actions as an array, if its shape and dtype fit (the step kernel checks the values)."""
        if type(actions) is not np.ndarray:
            actions = np.asarray(actions)
        expected = (self.num_envs, self.num_agents)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape {expected} (envs, agents), got {actions.shape}")
        if actions.dtype.kind not in "iu":
            raise ValueError(f"actions must be an integer array, got dtype {actions.dtype}")
        return actions

    def _next_seed(self, env: int) -> int:
        episode = int(self._episode_counts[env])
        self._episode_counts[env] += 1
        if self._fixed_seed is not None:
            return int(self._fixed_seed)
        return _episode_seed(self._base_seed, env, episode)

    # ----------------------------------------------------------------------------------------------
    # one environment's new episode

    def _start_episode(self, env: int, seed: int, layout: MapLayout) -> None:
        """Writes environment `env`'s map, task, goal streams and counters for the episode of `seed`."""
        height, width = layout.shape
        radius = self.radius
        self._seeds[env] = seed
        self._max_steps[env] = _variant_of(self.scenario, seed).dynamics.max_episode_steps
        self._map_shapes[env] = (height, width)
        self._obstacles[env] = 1
        self._obstacles[env, :height, :width] = layout.obstacles
        padded = self._padded_obstacles[env]
        padded[:] = 0
        if layout.outside_density is not None:
            outside = np.random.default_rng(layout.outside_seed).binomial(
                1, layout.outside_density, (height + 2 * radius, width + 2 * radius)
            )
            padded[: height + 2 * radius, : width + 2 * radius] = outside
        padded[radius - 1 : radius + height + 1, radius - 1 : radius + width + 1] = 1
        padded[radius : radius + height, radius : radius + width] = layout.obstacles
        self._global_obstacles[env] = padded
        num_components = self._label_map(env)
        starts, goals = self._place_task(env, seed, layout, num_components)
        self._starts[env] = starts
        self._positions[env] = starts
        self._goals[env] = goals
        self._active[env] = True
        self._occupancy[env] = 0
        self._occupancy[env, starts[:, 0] + radius, starts[:, 1] + radius] = 1
        self._elapsed[env] = 0
        self._finished[env] = False
        self._sequence_index[env] = 0
        self._solve_time[env] = -1
        self._counters[env] = 0
        if self._rules[1] == RESTART:
            agent_seeds = np.random.default_rng(seed).integers(_INT32_MAX, size=self.num_agents)
            seed_streams(self._streams[env], agent_seeds)
        self._observed_at[env] = -1
        observe(
            self._obs[env],
            padded,
            self._occupancy[env],
            self._positions[env],
            self._goals[env],
            self._observed_at[env],
            radius,
            *self._channels,
        )

    def _place_task(
        self, env: int, seed: int, layout: MapLayout, num_components: int
    ) -> tuple[np.ndarray, ...]:
        """Starts and first goals (N, 2), and the lifelong goal mode, by POGEMA's precedence: fixed
        starts and goals, then possible-position lists, then generation from the seed."""
        count = self.num_agents
        self._goal_mode[env] = GOALS_FROM_COMPONENT
        if layout.starts is not None and layout.goals is not None:
            starts, goals = layout.starts[:count], layout.goals[:count]
            if len(starts) < count or len(goals) < count:
                raise TaskGenerationError(
                    f"map '{layout.name}' fixes {min(len(starts), len(goals))} starts/goals, "
                    f"{count} agents requested"
                )
            if goals.ndim == 3:
                self._set_sequences(env, goals)
                goals = goals[:, 0]
            return starts, goals
        if layout.possible_starts is not None and layout.possible_goals is not None:
            return self._place_from_lists(env, seed, layout)
        order = np.flatnonzero(self._labels[env] >= 0)
        np.random.default_rng(seed).shuffle(order)
        starts = np.zeros((count, 2), dtype=np.int64)
        goals = np.zeros((count, 2), dtype=np.int64)
        placed = place_agents(
            order, self._labels[env], self._comp_offset[env, : num_components + 1], starts, goals
        )
        if placed < count:
            raise TaskGenerationError(
                f"map '{layout.name}' (seed {seed}) has room for {placed} agents, {count} requested"
            )
        return starts, goals

    def _place_from_lists(self, env: int, seed: int, layout: MapLayout) -> tuple[np.ndarray, ...]:
        """POGEMA's possible-lists mode: one generator shuffles the starts, then the goals; the first N of
        each are taken, and lifelong goals are drawn from the whole shuffled goal list."""
        count = self.num_agents
        possible_starts, possible_goals = layout.possible_starts, layout.possible_goals
        if len(possible_starts) < count or len(possible_goals) < count:
            raise TaskGenerationError(
                f"map '{layout.name}' has {len(possible_starts)} possible starts and "
                f"{len(possible_goals)} possible goals, {count} agents requested"
            )
        rng = np.random.default_rng(seed)
        start_order = np.arange(len(possible_starts))
        goal_order = np.arange(len(possible_goals))
        rng.shuffle(start_order)
        rng.shuffle(goal_order)
        shuffled_goals = possible_goals[goal_order]
        if shuffled_goals.shape[0] > self._goal_list.shape[1]:
            self._goal_list = np.zeros((self.num_envs, shuffled_goals.shape[0], 2), dtype=np.int64)
            self._kernel_state = None
        self._goal_list[env, : len(shuffled_goals)] = shuffled_goals
        self._num_listed[env] = len(shuffled_goals)
        self._goal_mode[env] = GOALS_FROM_LIST
        return possible_starts[start_order[:count]], shuffled_goals[:count]

    def _set_sequences(self, env: int, sequences: np.ndarray) -> None:
        """Per-agent goal sequences (N, L, 2), cycled on arrival; rows of -1 end a shorter sequence."""
        length = sequences.shape[1]
        if length > self._sequences.shape[2]:
            self._sequences = np.zeros((self.num_envs, self.num_agents, length, 2), dtype=np.int64)
            self._kernel_state = None
        self._sequences[env, :, :length] = sequences
        valid = sequences[:, :, 0] >= 0
        self._sequence_length[env] = np.where(valid.all(axis=1), length, valid.argmin(axis=1))
        self._goal_mode[env] = GOALS_FROM_SEQUENCE

    # ----------------------------------------------------------------------------------------------
    # snapshots (exact checkpoints of a running batch)

    def snapshot(self) -> dict[str, np.ndarray]:
        """Every environment's whole state as named arrays (copies): maps, agents, goal streams, episode
        counters and seeds, metric counters, observations and neighbour lists. `restore` on a GridEnv made
        with the same arguments continues exactly as this one would: training checkpoints hold it."""
        self._require_reset()
        arrays = {name: value.copy() for name, value in vars(self).items() if isinstance(value, np.ndarray)}
        scalars = {name: np.array(getattr(self, name), dtype=np.int64) for name in _SNAPSHOT_SCALARS}
        return arrays | scalars

    def restore(self, snapshot: dict[str, np.ndarray]) -> Any:
        """Continue from `snapshot` (of a GridEnv with the same scenario, num_envs and options); returns
        the observation the snapshot was taken at. Raises ValueError for a snapshot of another batch."""
        capacity = np.asarray(snapshot.get("_map_capacity", (0, 0)))
        if capacity.shape != (2,):
            raise ValueError("snapshot is not of a GridEnv like this one (no map capacity)")
        self._ensure_map_capacity(*(int(v) for v in capacity))  # allocates the map buffers it names
        expected = {name for name, value in vars(self).items() if isinstance(value, np.ndarray)}
        expected |= {"neighbours", *_SNAPSHOT_SCALARS}  # neighbours: made with the helpers at reset
        if set(snapshot) != expected:
            different = sorted(set(snapshot) ^ expected)[:3]
            raise ValueError(f"snapshot is not of a GridEnv like this one (entries differ: {different})")
        for name in ("_rules", "_channels", "_obs"):
            mine, theirs = getattr(self, name), np.asarray(snapshot[name])
            if (
                mine.shape != theirs.shape
                or mine.dtype != theirs.dtype
                or (name in ("_rules", "_channels") and not np.array_equal(mine, theirs))
            ):
                raise ValueError(f"snapshot is not of a GridEnv like this one ({name.lstrip('_')} differs)")
        for name in expected - set(_SNAPSHOT_SCALARS):
            setattr(self, name, np.array(snapshot[name], copy=True))
        self._base_seed = int(snapshot["_base_seed"])
        self._map_capacity = tuple(int(v) for v in snapshot["_map_capacity"])
        self._largest_map = tuple(int(v) for v in snapshot["_largest_map"])
        neighbours = self.neighbours
        self._kernel_state = None
        self._helpers_ready = False
        self._ensure_helpers()  # distance fields and the rest are rebuilt over the restored maps
        self.neighbours = neighbours
        return self._observation()

    # ----------------------------------------------------------------------------------------------
    # observations and metrics

    def _finish_observation(self) -> None:
        """Adds what the core kernels do not write: the extra channels, dict coordinates, neighbours."""
        self._ensure_helpers()
        if self._extra_channels is not None:
            self._extra_channels.write(self._obs, self._positions, self._goals, self._active)
        if self._neighbour_finder is not None:
            self._neighbour_finder(self._positions, self._active, out=self.neighbours)
        if self._obs_type != "default":
            np.subtract(self._positions, self._starts, out=self._xy)
            np.subtract(self._goals, self._starts, out=self._target_xy)

    def _observation(self) -> Any:
        if self._obs_type == "default":
            return self._obs
        result = {
            "obstacles": self._obs[:, :, 0],
            "agents": self._obs[:, :, 1],
            "xy": self._xy,
            "target_xy": self._target_xy,
        }
        if self._obs_type == "MAPF":
            result["global_obstacles"] = self._global_obstacles
            result["global_xy"] = self._positions.astype(np.int64) + self.radius
            result["global_target_xy"] = self._goals.astype(np.int64) + self.radius
        return result

    def _metrics(self, env: int) -> dict[str, float | int]:
        """POGEMA's metrics dict of the episode that environment `env` just finished."""
        keys = METRIC_KEYS[self._on_target]
        values = self._metric_values[env]
        return {
            key: int(values[k])
            if key in _INT_METRICS or (key == "ep_length" and self._on_target == "nothing")
            else float(values[k])
            for k, key in enumerate(keys)
        }


def _grown(array: np.ndarray, shape: tuple[int, ...], fill: int) -> np.ndarray:
    """A new `shape` array of `array`'s dtype holding `array` in its leading corner and `fill` elsewhere."""
    grown = np.full(shape, fill, dtype=array.dtype)
    grown[tuple(slice(0, size) for size in array.shape)] = array
    return grown


def _copy_observation(observation: Any) -> Any:
    if isinstance(observation, dict):
        return {key: value.copy() for key, value in observation.items()}
    return observation.copy()


def _scenario_layouts(scenario: Scenario) -> LayoutSource:
    """The scenario's episode layouts: `sim.maps.build_layout`; with variants (a curriculum), episode seed
    s plays variant s mod V (`_variant_of`)."""
    from sim.maps import build_layout

    return lambda seed: build_layout(_variant_of(scenario, seed), seed)


def _variant_of(scenario: Scenario, seed: int) -> Scenario:
    """The concrete scenario of the episode with `seed`. Variants may change the map and the episode
    limit only: a batch shares its agents, observations and rewards."""
    if scenario.variants is None:
        return scenario
    from scenarios.loader import expand_variants

    variants = expand_variants(scenario)
    for variant in variants:
        for block in ("agents", "observation", "reward"):
            if getattr(variant, block) != getattr(variants[0], block):
                raise ValueError(
                    f"scenario '{scenario.name}': variants of '{scenario.variants.key}' change the {block} "
                    f"block; GridEnv batches only variants that change the map and the episode limit"
                )
    return variants[seed % len(variants)]
