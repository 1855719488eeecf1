"""`MapLayout`: what a map generator hands the simulator for one episode.

The map generators (`sim.maps`) turn a scenario's map and agent blocks into a layout; the simulator turns
a layout into an episode (POGEMA's start/goal placement when the layout fixes none, then the dynamics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MapLayout:
    """One episode's map and whatever it fixes about the agents.

    obstacles: (H, W) uint8, 1 = obstacle, unpadded.
    possible_starts, possible_goals: (M, 2) int64 (row, col), POGEMA's `@`/`$`/`!` mode lists in
        POGEMA's order (`.` cells in both), or None.
    starts: (N, 2) int64 fixed starts (letters, `fixed` or `scen` placement, bottleneck rooms), or None.
    goals: (N, 2) int64 fixed goals, or (N, L, 2) per-agent goal sequences (lifelong, cycled), or None.
    name: the map's name (benchmark map name, file name, generator name).
    outside_density: None, or POGEMA's `empty_outside=False`: the cells beyond the ring of obstacles
        around the map are `default_rng(outside_seed).binomial(1, outside_density, (H + 2r, W + 2r))`
        (r = obs radius) instead of free, so agents near the border see random obstacles there.
    """

    obstacles: np.ndarray
    possible_starts: np.ndarray | None = None
    possible_goals: np.ndarray | None = None
    starts: np.ndarray | None = None
    goals: np.ndarray | None = None
    name: str = ""
    outside_density: float | None = None
    outside_seed: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.obstacles.shape[0]), int(self.obstacles.shape[1]))
