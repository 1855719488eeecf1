"""Memory a batch of environments needs, estimated from the scenario before anything is allocated: a
scenario, `--envs` or `num_envs` too large for the machine is one line (a `ScenarioError`), not a
MemoryError halfway through allocation or the kernel's OOM killer."""

from __future__ import annotations

import os

import numpy as np

from scenarios.errors import ScenarioError
from scenarios.schema import Scenario

FLOAT32 = np.dtype(np.float32)


def buffer_bytes(
    scenario: Scenario, num_envs: int, map_shape: tuple[int, int], obs_dtype: np.dtype = FLOAT32
) -> int:
    """About how many bytes `GridEnv`'s buffers for `num_envs` environments of `scenario` on maps of
    `map_shape` take: per environment ~21 bytes per map cell (map, labels, component lists) and ~14 per
    padded cell (obstacles, occupancy, global map, BFS scratch); per agent its observation window, ~256
    bytes of state (positions, goals, RNG streams, counters) and its neighbour list."""
    height, width = map_shape
    radius = scenario.observation.radius
    window = (2 * radius + 1) ** 2 * len(scenario.observation.channels) * np.dtype(obs_dtype).itemsize
    per_env = 21 * height * width + 14 * (height + 2 * radius) * (width + 2 * radius)
    per_agent = window + 256 + 8 * scenario.observation.neighbours
    return num_envs * (per_env + scenario.agents.count * per_agent)


def machine_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def require_memory(
    scenario: Scenario, num_envs: int, map_shape: tuple[int, int], obs_dtype: np.dtype = FLOAT32
) -> None:
    """ScenarioError when the buffers (`buffer_bytes`) would not fit in this machine's memory."""
    needed = buffer_bytes(scenario, num_envs, map_shape, obs_dtype)
    available = machine_memory()
    if needed > available:
        height, width = map_shape
        raise ScenarioError(
            f"{scenario.source or scenario.name}: {num_envs} environment(s) of {scenario.agents.count} "
            f"agents on {height}x{width} maps with observation radius {scenario.observation.radius} need "
            f"about {needed / 2**30:.1f} GiB of buffers, more than this machine's {available / 2**30:.1f} "
            "GiB of memory (use fewer environments or agents, a smaller map or radius)"
        )
