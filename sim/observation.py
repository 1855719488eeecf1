"""What a batch returns besides the step kernels' buffers: the optional observation extras (distance
fields, extra channels, neighbour lists, reward shaping), the dict observations of types 'POMAPF' and
'MAPF', and POGEMA's metrics dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scenarios.schema import DEFAULT_CHANNELS, Scenario
from sim.kernels.metrics import METRIC_KEYS
from sim.state import EnvState

if TYPE_CHECKING:  # built only when a scenario asks for them
    from sim.channels import ExtraChannels
    from sim.distance import DistanceCache
    from sim.neighbours import NeighbourFinder
    from sim.rewards import RewardShaper

KERNEL_CHANNELS = DEFAULT_CHANNELS
"""The channels the step kernels write (POGEMA's default observation); the others are `Extras`'."""
WINDOW_CHANNELS = DEFAULT_CHANNELS[:2]
"""The windows of a 'POMAPF' / 'MAPF' observation (its obstacles and agents entries)."""
_INT_METRICS = frozenset({"SoC", "makespan"})


def channel_names(scenario: Scenario) -> tuple[str, ...]:
    """The channels of the observation buffer, in its order."""
    return tuple(scenario.observation.channels) if scenario.observation.type == "default" else WINDOW_CHANNELS


def kernel_channels(names: tuple[str, ...]) -> np.ndarray:
    """(3,) int64: the buffer channel of each of `KERNEL_CHANNELS`, -1 where absent."""
    return np.array([names.index(name) if name in names else -1 for name in KERNEL_CHANNELS], dtype=np.int64)


class Extras:
    """The optional parts of a batch, built over its current map buffers (build anew when they are
    reallocated): distance fields (for the `path` channel, directional rewards, `distance_to_goal`), the
    extra channels, the reward shaper and the neighbour finder."""

    def __init__(self, scenario: Scenario, state: EnvState) -> None:
        self.obs_type = scenario.observation.type
        names = channel_names(scenario)
        self._obstacles = state.obstacles
        self._distances: DistanceCache | None = None
        if "path" in names or scenario.reward.scheme in ("directional", "directional_negative"):
            self.distances()
        self.channels: ExtraChannels | None = None
        if set(names) - set(KERNEL_CHANNELS):
            from sim.channels import ExtraChannels

            self.channels = ExtraChannels(names, self.distances())
        self.shaper: RewardShaper | None = None
        if scenario.reward.scheme != "pogema":
            from sim.rewards import RewardShaper

            num_envs, num_agents = state.positions.shape[:2]
            self.shaper = RewardShaper(scenario.reward, self._distances, num_envs, num_agents)
        self.neighbour_finder: NeighbourFinder | None = None
        if scenario.observation.neighbours > 0:
            from sim.neighbours import NeighbourFinder

            self.neighbour_finder = NeighbourFinder(
                state.positions.shape[1],
                state.capacity,
                scenario.observation.neighbours,
                scenario.observation.neighbour_radius,
            )
        # whether an observation needs more than the step kernels write (checked on every step)
        extras = (self.channels, self.neighbour_finder)
        self.needed = any(extra is not None for extra in extras) or self.obs_type != "default"

    def distances(self) -> DistanceCache:
        """The batch's `sim.distance.DistanceCache` (made on first use)."""
        if self._distances is None:
            from sim.distance import DistanceCache

            self._distances = DistanceCache(self._obstacles)
        return self._distances

    def finish_observation(self, state: EnvState) -> None:
        """Adds what the kernels do not write: the extra channels, neighbours, dict coordinates."""
        if self.channels is not None:
            self.channels.write(state.obs, state.positions, state.goals, state.active)
        if self.neighbour_finder is not None:
            self.neighbour_finder(state.positions, state.active, out=state.neighbours)
        if self.obs_type != "default":
            np.subtract(state.positions, state.starts, out=state.xy)
            np.subtract(state.goals, state.starts, out=state.target_xy)


def observation(state: EnvState, obs_type: str) -> Any:
    """The observation of type `obs_type` over the state's buffers (`GridEnv.reset` lists its parts)."""
    if obs_type == "default":
        return state.obs
    result = {
        "obstacles": state.obs[:, :, 0],
        "agents": state.obs[:, :, 1],
        "xy": state.xy,
        "target_xy": state.target_xy,
    }
    if obs_type == "MAPF":
        radius = int(state.rules[2])
        result["global_obstacles"] = state.global_obstacles
        result["global_xy"] = state.positions.astype(np.int64) + radius
        result["global_target_xy"] = state.goals.astype(np.int64) + radius
    return result


def copy_observation(observation: Any) -> Any:
    """A copy of an observation (an array or a dict of arrays)."""
    if isinstance(observation, dict):
        return {key: value.copy() for key, value in observation.items()}
    return observation.copy()


def episode_metrics(values: np.ndarray, on_target: str) -> dict[str, float | int]:
    """POGEMA's metrics dict from one environment's metric values (METRIC_SLOTS,) float64."""
    keys = METRIC_KEYS[on_target]
    return {
        key: int(values[k])
        if key in _INT_METRICS or (key == "ep_length" and on_target == "nothing")
        else float(values[k])
        for k, key in enumerate(keys)
    }
