"""PettingZoo `ParallelEnv` over one `GridEnv` environment: dicts exist only at this edge.

| agents        | `player_0` ... `player_{N-1}` (POGEMA's names)                                 |
| actions       | Discrete(5): 0 stay, 1 up, 2 down, 3 left, 4 right; a missing entry means 0     |
| observations  | the scenario's (C, F, F) float32 window, Box(-1, 1); POMAPF/MAPF: a Dict of Box |
| rewards       | the scenario's reward scheme (POGEMA's by default)                              |
| removal       | an agent leaves `agents` once inactive or when the episode ends (POGEMA's rule) |
| infos         | `{"is_active": bool}`; on the final step every returned info holds `metrics`   |
| state()       | int64 (N, 5) per agent: row, col, goal row, goal col, active (see `state`)      |
| render()      | render_mode "rgb_array": an (H*cell, W*cell, 3) uint8 frame (`sim.render`)       |

Given a POGEMA `GridConfig` the episodes equal `pogema_v0(GridConfig(..., integration='PettingZoo'))`'s, with
two differences: this class subclasses `pettingzoo.ParallelEnv` (POGEMA's is duck-typed), and the episode
metrics go to every returned info rather than only to `player_0`'s (POGEMA drops them once it is done).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from scenarios.schema import Scenario
from sim.env import GridEnv

RENDER_MODES = ("rgb_array",)
STATE_COLUMNS = ("row", "col", "goal_row", "goal_col", "active")
"""The columns of `GridSwarmParallelEnv.state()`, one row per agent."""


def parallel_env(
    source: Any, seed: int | None = None, render_mode: str | None = None
) -> GridSwarmParallelEnv:
    """A PettingZoo parallel env from a Scenario (`scenarios.load` reads a built-in name or a YAML path) or
    a pogema GridConfig.

    `seed` is the base seed for scenarios (episodes are reproducible from it); a GridConfig carries its own.
    `render_mode` is None or "rgb_array".
    """
    if type(source).__name__ == "GridConfig":
        return GridSwarmParallelEnv(GridEnv.from_pogema(source, num_envs=1), render_mode)
    if not isinstance(source, Scenario):
        raise TypeError(
            f"parallel_env takes a Scenario (scenarios.load reads a built-in name or a YAML path) or a "
            f"GridConfig, got {type(source).__name__}"
        )
    return GridSwarmParallelEnv(GridEnv(source, num_envs=1, seed=seed, auto_reset=False), render_mode)


class GridSwarmParallelEnv(ParallelEnv):
    """One environment of a `GridEnv` (num_envs == 1) behind the PettingZoo Parallel API."""

    metadata = {"name": "gridswarm_v0", "render_modes": list(RENDER_MODES)}  # noqa: RUF012 (PettingZoo's)

    def __init__(self, env: Any, render_mode: str | None = None) -> None:
        if env.num_envs != 1:
            raise ValueError(f"a PettingZoo env wraps exactly one environment, got num_envs={env.num_envs}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or one of {RENDER_MODES}, got {render_mode!r}")
        self.env = env
        self.render_mode = render_mode
        self.possible_agents = [f"player_{i}" for i in range(env.num_agents)]
        self.agents: list[str] = []
        self._index = {name: i for i, name in enumerate(self.possible_agents)}
        first_obs = env.reset()
        observation_space = _space_of(self._agent_view(first_obs, 0))
        action_space = spaces.Discrete(5)
        self._observation_spaces = dict.fromkeys(self.possible_agents, observation_space)
        self._action_spaces = dict.fromkeys(self.possible_agents, action_space)
        self._actions = np.zeros((1, env.num_agents), dtype=np.int64)
        state_shape = (env.num_agents, len(STATE_COLUMNS))
        self.state_space = spaces.Box(0, np.iinfo(np.int64).max, state_shape, np.int64)

    def observation_space(self, agent: str) -> spaces.Space:
        """The same space object on every call (PettingZoo's seeding relies on it)."""
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """Discrete(5), the same object on every call."""
        return self._action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, Any], dict[str, dict]]:
        """Start an episode (with `seed`, a new base seed); every agent is live again."""
        obs = self.env.reset(seed=seed) if seed is not None else self.env.reset()
        self.agents = self.possible_agents[:]
        active = self.env.active[0]
        observations = {name: self._agent_view(obs, i) for name, i in self._index.items()}
        infos = {name: {"is_active": bool(active[i])} for name, i in self._index.items()}
        return observations, infos

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        """Advance one step; entries are returned for the agents live before it, then the finished leave."""
        self._actions[0] = [actions.get(name, 0) for name in self.possible_agents]
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        if "final_obs" in info:  # an auto-resetting env: report the episode that just ended
            obs = info["final_obs"]
        metrics = info["metrics"][0]
        active = info["active"][0]
        live = [(name, self._index[name]) for name in self.agents]
        observations = {name: self._agent_view(obs, i) for name, i in live}
        reward_dict = {name: float(rewards[0, i]) for name, i in live}
        terminations = {name: bool(terminated[0, i]) for name, i in live}
        truncations = {name: bool(truncated[0, i]) for name, i in live}
        infos = {name: {"is_active": bool(active[i])} for name, i in live}
        if metrics is not None:
            for agent_info in infos.values():
                agent_info["metrics"] = dict(metrics)
        episode_over = bool(truncated[0].all() or terminated[0].all())
        self.agents = [name for name, i in live if active[i] and not episode_over]
        return observations, reward_dict, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global state: int64 (N, 5), per agent its cell (row, col), its current goal (row, col) and
        whether it is active (1/0), in `possible_agents` order; a fresh array. The map is fixed within an
        episode (the observations carry it), so the state stays one shape for every map size."""
        state = np.empty(self.state_space.shape, dtype=np.int64)
        state[:, 0:2] = self.env.positions[0]
        state[:, 2:4] = self.env.goals[0]
        state[:, 4] = self.env.active[0]
        return state

    def render(self) -> np.ndarray | None:
        """With render_mode "rgb_array": the current step as an (H*12, W*12, 3) uint8 RGB frame (active
        agents as discs, their goals as rings of the same colour, obstacles dark); otherwise None."""
        if self.render_mode is None:
            return None
        from sim.render import render_frames

        height, width = self.env.map_shapes[0]
        frame = render_frames(
            self.env.obstacles[0, :height, :width],
            self.env.positions[0][None],  # (1, N, 2): a one-step episode
            self.env.goals[0][None],
            self.env.active[0][None],
        )[0]
        return np.asarray(frame.convert("RGB"))

    def _agent_view(self, obs: Any, agent: int) -> Any:
        """Agent `agent`'s observation, copied: the env overwrites its buffers at the next step."""
        if isinstance(obs, dict):
            return {key: _per_agent(key, value, agent) for key, value in obs.items()}
        return obs[0, agent].copy()

    def close(self) -> None:
        """Nothing to release: the env owns only arrays."""


SHARED_KEYS = frozenset({"global_obstacles"})
"""Dict-observation entries batched (1, ...) for the whole env, not (1, N, ...) per agent (MAPF's map)."""


def _per_agent(key: str, value: np.ndarray, agent: int) -> np.ndarray:
    value = np.asarray(value)
    return (value[0] if key in SHARED_KEYS else value[0, agent]).copy()


def _space_of(observation: Any) -> spaces.Space:
    if isinstance(observation, dict):
        return spaces.Dict({key: _space_of(value) for key, value in observation.items()})
    observation = np.asarray(observation)
    if observation.dtype == np.float32 and observation.ndim >= 2:
        return spaces.Box(-1.0, 1.0, observation.shape, np.float32)
    return spaces.Box(np.iinfo(np.int64).min, np.iinfo(np.int64).max, observation.shape, np.int64)
