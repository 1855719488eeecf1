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

Episodes: episode k of environment e has seed SeedSequence(seed, spawn_key=(e, k)) (with `env_variants`:
its variant's base seed and its index among that variant's environments, `sim.episode_start.EpisodePlan`);
that seed generates the map (random maps) and the task exactly as POGEMA generates them from
`GridConfig(seed=...)`.
Buffers are allocated once and written in place: the returned observations, rewards, terminated and
truncated arrays are the environment's own and are overwritten by the next `step` / `reset` (copy to keep;
never write into them: an agent's obstacle window is rewritten only when the agent moves).
Deviations from POGEMA 1.4.0 (all where POGEMA crashes or leaks state): fixed single goals with
on_target 'restart' draw later goals from the component (POGEMA raises TypeError); possible-start/goal
lists are shuffled afresh from the episode seed at every reset (POGEMA reshuffles its already shuffled
lists); a reset restarts the metric counters (POGEMA's wrappers keep counting across a mid-episode reset).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from scenarios.schema import Scenario
from sim.actions import NUM_ACTIONS, checked_actions
from sim.budget import require_memory
from sim.episode_start import EpisodePlan, LayoutSource, TaskGenerationError, start_episode
from sim.kernels.step import step_envs, step_envs_serial
from sim.maps import largest_map_shape
from sim.observation import (
    Extras,
    channel_names,
    copy_observation,
    episode_metrics,
    kernel_channels,
    observation,
)
from sim.seeds import base_seed, variant_seeds
from sim.state import EnvState, StateViews, scenario_rules, stacked_parts

__all__ = ["GridEnv", "TaskGenerationError"]

_OBS_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))


class GridEnv(StateViews):
    """E environments of N agents each, POGEMA 1.4.0 semantics, stepped as arrays.

    `scenario`: a `Scenario` (`scenarios.load` reads a built-in name or a YAML path). `seed`: the base
    seed of all episodes (None: the scenario's seed; None there too: OS entropy). `auto_reset`: reset an
    environment as soon as its episode ends (its final observation goes to info["final_obs"]); otherwise
    it keeps simulating like POGEMA, and its metrics are reported again at every later step.
    `num_threads`: numba threads across environments (results do not depend on it); 1 steps on the
    calling thread without numba's thread pool (cheapest for small batches). `obs_dtype`: float32
    (POGEMA's) or uint8, the same 0/1 values in a quarter of the memory traffic (faster at scale).
    `env_variants`: for a scenario with variants, the variant index (into `scenarios.expand_variants`)
    that each environment always plays (`scenarios.variants.variant_blocks`); by default an episode plays
    variant (episode seed mod V).
    """

    num_actions = NUM_ACTIONS

    def __init__(
        self,
        scenario: Scenario,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        auto_reset: bool = True,
        num_threads: int | None = None,
        obs_dtype: type | np.dtype = np.float32,
        env_variants: Sequence[int] | np.ndarray | None = None,
        _layouts: LayoutSource | None = None,
        _fixed_seed: int | Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if not isinstance(scenario, Scenario):
            raise TypeError(
                f"GridEnv takes a scenarios.Scenario (scenarios.load reads a built-in name or a YAML path), "
                f"got {type(scenario).__name__}"
            )
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if np.dtype(obs_dtype) not in _OBS_DTYPES:
            raise ValueError(f"obs_dtype must be float32 or uint8, got {np.dtype(obs_dtype)}")
        self.obs_dtype = np.dtype(obs_dtype)
        self.scenario = scenario
        self.num_envs = int(num_envs)
        self.num_agents = int(scenario.agents.count)
        self.auto_reset = auto_reset
        self.radius = int(scenario.observation.radius)
        self._num_threads = num_threads
        self._step_kernel = step_envs_serial if num_threads == 1 or num_envs == 1 else step_envs
        self._plan = EpisodePlan(scenario, self.num_envs, env_variants, _layouts)
        # One task seed for every episode of every environment (POGEMA's fixed GridConfig.seed), or one per
        # environment (E,): a benchmark's seeds on one map, played side by side.
        self._fixed_seed = (
            None if _fixed_seed is None else np.broadcast_to(np.asarray(_fixed_seed), (num_envs,))
        )
        # Sized for the largest map up front when the scenario says what it is (no growing mid-batch).
        self._largest_map = largest_map_shape(self._plan.variants) if _layouts is None else (0, 0)
        require_memory(scenario, self.num_envs, self._largest_map, self.obs_dtype)
        max_steps = np.full(self.num_envs, scenario.dynamics.max_episode_steps)
        self._state = EnvState.allocate(
            scenario_rules(scenario), kernel_channels(channel_names(scenario)), max_steps, self.num_agents,
            self.obs_shape, self.obs_dtype, max(scenario.observation.neighbours, 0),
        )  # fmt: skip
        self._state.base_seed[()] = base_seed(scenario.seed if seed is None else seed)
        self._extras: Extras | None = None  # built at reset, over the map buffers

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

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """(C, F, F) of the window observation."""
        size = 2 * self.radius + 1
        return (len(channel_names(self.scenario)), size, size)

    @property
    def observation(self) -> Any:
        """The current observation (what the last `reset` or `step` returned; the env's own buffer)."""
        self._require_reset()
        return observation(self._state, self.scenario.observation.type)

    def distance_to_goal(
        self,
        positions: np.ndarray | None = None,
        goals: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """(E, N) int32 shortest-path cost from `positions` to `goals` (default: the live ones), from cached
        BFS distance fields (`sim.distance`)."""
        extras = self._require_reset()
        positions = self._state.positions if positions is None else positions
        goals = self._state.goals if goals is None else goals
        return extras.distances().distance_to_goal(positions, goals, out=out)

    def _require_reset(self) -> Extras:
        if self._extras is None:
            raise RuntimeError("call reset() first")
        return self._extras

    def reset(self, seed: int | None = None, episode_seeds: np.ndarray | None = None) -> Any:
        """Starts a new episode in every environment and returns the first observation.

        `seed` restarts the episode counters from that base seed; `episode_seeds` (E,) starts each
        environment from an exact episode seed (replay). Returns (E, N, C, F, F) float32 for type
        'default'; for 'POMAPF' a dict of obstacles, agents (E, N, F, F) float32, xy and target_xy
        (E, N, 2) int64 (relative to the start); 'MAPF' adds global_obstacles (E, Hp, Wp) float32 (the
        padded map), global_xy and global_target_xy (E, N, 2) int64 in padded coordinates.
        """
        if seed is not None:
            self._state.base_seed[()] = base_seed(seed)
            self._state.episode_counts[:] = 0
        if episode_seeds is not None:
            episode_seeds = np.asarray(episode_seeds)
            if episode_seeds.shape != (self.num_envs,):
                raise ValueError(
                    f"episode_seeds must have shape ({self.num_envs},), got {episode_seeds.shape}"
                )
        layouts = []
        for env in range(self.num_envs):
            env_seed = int(episode_seeds[env]) if episode_seeds is not None else self._next_seed(env)
            layouts.append((env_seed, self._plan.layout(env, env_seed)))
        height = max(self._largest_map[0], *(lay.shape[0] for _, lay in layouts))
        if self._state.grow_maps(height, max(self._largest_map[1], *(lay.shape[1] for _, lay in layouts))):
            self._extras = None  # rebuilt over the new map buffers
        for env, (env_seed, layout) in enumerate(layouts):
            start_episode(self._state, env, env_seed, layout, self._plan.variant(env, env_seed))
        self._finish_observation()
        return observation(self._state, self.scenario.observation.type)

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advances every environment by one step; see the module docstring for what comes back."""
        extras, state = self._require_reset(), self._state
        actions = checked_actions(actions, (self.num_envs, self.num_agents))
        shaper = extras.shaper
        if shaper is not None:
            shaper.before_step(state.positions, state.goals, state.active)
        if self._num_threads is not None and self._num_threads > 1:
            numba.set_num_threads(self._num_threads)
        num_finished = self._step_kernel(state.rules, state.kernel_state(), actions)
        if num_finished < 0:
            bad = actions.flat[-num_finished - 1]
            raise ValueError(f"actions must be in 0..{self.num_actions - 1}, got {bad}")
        if shaper is not None:
            shaper.shape(state.rewards, state.actions, state.positions, state.goals, out=state.rewards)
        info: dict[str, Any] = {"metrics": [None] * self.num_envs, "active": state.active.copy()}
        if num_finished:
            self._end_episodes(info)
        elif extras.needed:
            extras.finish_observation(state)
        obs = observation(state, extras.obs_type)
        return obs, state.rewards, state.terminated, state.truncated, info

    def _end_episodes(self, info: dict[str, Any]) -> None:
        """The finished environments' metrics into `info`; with auto-reset, their final observation too and
        their next episodes started."""
        state, on_target = self._state, self.scenario.dynamics.on_target
        ended = np.flatnonzero(state.finished)
        for env in ended:
            info["metrics"][env] = episode_metrics(state.metric_values[env], on_target)
        if self.auto_reset:
            self._finish_observation()
            info["final_obs"] = copy_observation(observation(state, self.scenario.observation.type))
            for env in ended:
                env_seed = self._next_seed(env)
                layout = self._plan.layout(env, env_seed)
                if state.grow_maps(*layout.shape):
                    self._extras = None  # rebuilt over the new map buffers
                start_episode(state, env, env_seed, layout, self._plan.variant(env, env_seed))
        self._finish_observation()

    def episode_scenario(self, env: int) -> Scenario:
        """The concrete scenario (the variant, for a scenario with variants) that environment `env`'s
        current episode plays: with its episode seed, `GridEnv(episode_scenario(env))` replays it."""
        self._require_reset()
        return self._plan.variant(env, int(self._state.seeds[env]))

    def _next_seed(self, env: int) -> int:
        counts = self._state.episode_counts
        episode = int(counts[env])
        counts[env] += 1
        if self._fixed_seed is not None:
            return int(self._fixed_seed[env])
        return self._plan.episode_seed(int(self._state.base_seed), env, episode)

    def _finish_observation(self) -> None:
        if self._extras is None:
            self._extras = Extras(self.scenario, self._state)
        self._extras.finish_observation(self._state)

    def snapshot(self) -> dict[str, np.ndarray]:
        """Every environment's whole state as named arrays (copies; `sim.state`): maps, agents, goal
        streams, episode counters and seeds, metric counters, observations and neighbour lists. `restore`
        on a GridEnv made with the same arguments continues exactly as this one would: training checkpoints
        hold it."""
        self._require_reset()
        return self._state.snapshot()

    def restore(self, snapshot: dict[str, np.ndarray]) -> Any:
        """Continue from `snapshot` (of a GridEnv with the same scenario, num_envs and options; any snapshot
        format `sim.state` reads); returns the observation the snapshot was taken at. Raises ValueError for
        a snapshot of another batch. With `env_variants` in blocks it also reads the snapshot of one GridEnv
        per variant stacked by `marl.envs.StackedEnvs` ("<variant>/<name>" entries, each variant's
        environments made with its `variant_seeds` base seed): the same episodes, continued exactly."""
        parts = stacked_parts(snapshot)
        if parts is None:
            self._state = self._state.restored(snapshot)
        else:
            seeds = variant_seeds(int(self._state.base_seed), len(self._plan.variants))
            self._state = self._state.joined(parts, self._plan.variant_bounds(), seeds)
        self._extras = Extras(self.scenario, self._state)  # distance fields etc. over the restored maps
        return observation(self._state, self.scenario.observation.type)
