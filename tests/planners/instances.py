"""Planner test instances: random grid maps with every start and goal in one component, as GridEnvs."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, Scenario
from sim import GridEnv, MapLayout
from sim.kernels.tasks import label_components


def connected_map(rng: np.random.Generator, height: int, width: int, density: float) -> np.ndarray:
    """(H, W) uint8 random obstacles, with every free cell outside the largest component filled; that
    component has at least two cells (a lifelong goal is drawn from it, other than the agent's cell)."""
    obstacles = (rng.random((height, width)) < density).astype(np.uint8)
    obstacles[0, :2] = 0  # at least two connected free cells (height, width >= 2)
    labels = np.full((height, width), -1, dtype=np.int32)
    count = label_components(obstacles, labels, np.zeros(height * width, dtype=np.int64))
    largest = np.argmax(np.bincount(labels[labels >= 0], minlength=count))
    obstacles[(labels != largest) & (obstacles == 0)] = 1
    return obstacles


def instance(
    seed: int, height: int, width: int, density: float, agents: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A connected random map and distinct starts and distinct goals in it (at most one per free cell)."""
    rng = np.random.default_rng(seed)
    obstacles = connected_map(rng, height, width, density)
    free = np.argwhere(obstacles == 0)
    agents = min(agents, len(free))
    starts = free[rng.permutation(len(free))[:agents]]
    goals = free[rng.permutation(len(free))[:agents]]
    return obstacles, starts.astype(np.int64), goals.astype(np.int64)


def env_for(
    obstacles: np.ndarray,
    starts: np.ndarray,
    goals: np.ndarray,
    collision_system: str = "soft",
    on_target: str = "nothing",
    steps: int = 64,
    num_envs: int = 1,
) -> GridEnv:
    """A GridEnv that plays this instance in every environment, without auto-reset."""
    scenario = Scenario(
        map=MapSpec(width=obstacles.shape[1], height=obstacles.shape[0]),
        agents=AgentsSpec(count=len(starts)),
        dynamics=DynamicsSpec(
            collision_system=collision_system, on_target=on_target, max_episode_steps=steps
        ),
    )
    layout = MapLayout(obstacles, starts=starts, goals=goals)
    env = GridEnv(scenario, num_envs, seed=0, auto_reset=False, _layouts=lambda _env, _seed: layout)
    env.reset()
    return env


def conflicts(positions: np.ndarray, planned: np.ndarray, active: np.ndarray) -> tuple[int, int]:
    """(vertex conflicts, swap conflicts) among the active agents of one environment's joint move."""
    cells = [tuple(cell) for cell in planned[active]]
    vertex = len(cells) - len(set(cells))
    now = {tuple(positions[i]): i for i in np.flatnonzero(active)}
    swaps = 0
    for i in np.flatnonzero(active):
        j = now.get(tuple(planned[i]))
        if j is not None and j != i and tuple(planned[j]) == tuple(positions[i]):
            swaps += 1
    return vertex, swaps // 2


SYSTEMS = ("soft", "priority", "block_both")
"""The collision systems a planner property runs under."""
ON_TARGET = ("finish", "nothing", "restart")


@st.composite
def options(draw):
    """PIBTConfig options: every switch of the planner, drawn."""
    return {
        "swap": draw(st.booleans()),
        "prefer_free": draw(st.booleans()),
        "ties": draw(st.sampled_from(("random", "fixed"))),
        "priority_ties": draw(st.sampled_from(("random", "index"))),
        "backtrack": draw(st.sampled_from(("stay", "undo"))),
    }
