"""What the PIBT kernels (sim/planners/pibt.py, swap.py, lns.py) share: the planner's scratch buffers, one
environment's view, the distance and free-cell lookups, and the uniform draws of the tie-breaking stream.

Buffers (`PlanBuffers`, one set reused by every environment of a batch, N agents, H x W map buffer;
cells are flat row * W + col):
    occupied_now   (H * W,) int32   the agent standing on a cell, -1 between calls
    occupied_next  (H * W,) int32   the agent that reserved a cell for the next step, -1 between calls
    next_cell      (N,) int64       reserved cell, -1 while undecided
    candidates     (N, 5) int64     candidate cells, best first
    num_candidates (N,) int64
    tried          (N,) int64       candidates tried so far
    mark           (N,) int64       journal length before the agent's current reservation
    waiting        (N,) bool        the agent stays to push the occupant of its wanted cell
    swap_partner   (N,) int64       the agent to pull into our cell (RULE_SWAP), -1 if none
    stack          (N,) int64       the inheritance chain
    journal        (N,) int64       agents in order of reservation (RULE_UNDO)
    keys           (5,) float64     sort keys scratch: distance plus tie-break
    ranks          (5,) float64     sort keys scratch: the negated move preference, compared first
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from sim.paths import splitmix64
from sim.planners.fields import window_distance

_UNIT = 1.0 / 9007199254740992.0  # 2**-53


class PlanBuffers(NamedTuple):
    """The planner's scratch (module docstring); kernels take it whole."""

    occupied_now: np.ndarray
    occupied_next: np.ndarray
    next_cell: np.ndarray
    candidates: np.ndarray
    num_candidates: np.ndarray
    tried: np.ndarray
    mark: np.ndarray
    waiting: np.ndarray
    swap_partner: np.ndarray
    stack: np.ndarray
    journal: np.ndarray
    keys: np.ndarray
    ranks: np.ndarray


class EnvView(NamedTuple):
    """One environment's map and its agents' heuristic, as the kernels read them (views of the batch)."""

    grid: np.ndarray  # (H, W) uint8, the environment's map buffer
    height: int  # the environment's map rows
    width: int  # the environment's map columns
    values: np.ndarray  # (N, S, S) uint16, the agents' windows (sim.planners.fields.Windows)
    origin: np.ndarray  # (N, 2) int32
    base: np.ndarray  # (N,) int64
    near: np.ndarray  # (N, 5) int32
    preferences: np.ndarray  # (N, 5) float32, by action (0 stay, 1 up, 2 down, 3 left, 4 right): higher first


@njit(cache=True)
def env_view(
    obstacles,  # (E, H, W) uint8
    map_shapes,  # (E, 2) int32
    windows,  # sim.planners.fields.Windows
    preferences,  # (E, N, 5) float32, the move preferences by action
    env,  # int
):
    """The EnvView of environment `env` of a batch."""
    return EnvView(
        obstacles[env], map_shapes[env, 0], map_shapes[env, 1], windows.values[env], windows.origin[env],
        windows.base[env], windows.near[env], preferences[env],
    )  # fmt: skip


def new_plan_buffers(num_agents: int, map_shape: tuple[int, int]) -> PlanBuffers:
    """Scratch for N agents over maps of up to `map_shape` cells."""
    cells = map_shape[0] * map_shape[1]
    return PlanBuffers(
        occupied_now=np.full(cells, -1, dtype=np.int32),
        occupied_next=np.full(cells, -1, dtype=np.int32),
        next_cell=np.full(num_agents, -1, dtype=np.int64),
        candidates=np.zeros((num_agents, 5), dtype=np.int64),
        num_candidates=np.zeros(num_agents, dtype=np.int64),
        tried=np.zeros(num_agents, dtype=np.int64),
        mark=np.zeros(num_agents, dtype=np.int64),
        waiting=np.zeros(num_agents, dtype=bool),
        swap_partner=np.full(num_agents, -1, dtype=np.int64),
        stack=np.zeros(num_agents, dtype=np.int64),
        journal=np.zeros(num_agents, dtype=np.int64),
        keys=np.zeros(5, dtype=np.float64),
        ranks=np.zeros(5, dtype=np.float64),
    )


@njit(cache=True, inline="always")
def uniform01(rng_state):  # rng_state: (1,) uint64, advanced
    """A uniform float64 in [0, 1) from the SplitMix64 stream."""
    return (splitmix64(rng_state) >> np.uint64(11)) * _UNIT


@njit(cache=True, inline="always")
def agent_distance(view, agent, cell):
    """Agent's distance to its goal from flat `cell` (its window; UNREACHABLE where unknown)."""
    map_width = view.grid.shape[1]
    return window_distance(
        view.values[agent], view.origin[agent], view.base[agent], cell // map_width, cell % map_width
    )


@njit(cache=True, inline="always")
def free_cell(view, row, col):
    """Whether (row, col) is inside the environment's map and not an obstacle."""
    return 0 <= row < view.height and 0 <= col < view.width and view.grid[row, col] == 0
