"""Golden metrics from POGEMA's upstream tests (tests/test_deterministic_policy.py at
Cognitive-AI-Systems/pogema): its deterministic A*-with-noise policy played on `GridEnv.from_pogema` must
give exactly the metrics POGEMA asserts for itself. pogema is not needed: `from_pogema` reads a
`GridConfig`'s fields, so a stand-in with GridConfig 1.4.0's defaults serves (checked against the real one
where pogema is installed)."""

from __future__ import annotations

import dataclasses
from heapq import heappop, heappush

import numpy as np
import pytest

from sim import GridEnv

WINDOW_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))
ACTION_OF_MOVE = {(0, 0): 0, (-1, 0): 1, (1, 0): 2, (0, -1): 3, (0, 1): 4}
PLANNER_BUDGET = 500  # node expansions per plan, as upstream


@dataclasses.dataclass(frozen=True)
class PogemaConfig:
    """The `GridConfig` fields `GridEnv.from_pogema` reads, with pogema 1.4.0's defaults."""

    num_agents: int
    size: int
    seed: int
    max_episode_steps: int
    on_target: str
    obs_radius: int = 5
    density: float = 0.3
    collision_system: str = "priority"
    observation_type: str = "default"
    map: None = None
    map_name: None = None
    agents_xy: None = None
    targets_xy: None = None
    possible_agents_xy: None = None
    possible_targets_xy: None = None
    empty_outside: bool = True

    @property
    def width(self) -> int:
        return self.size

    @property
    def height(self) -> int:
        return self.size


class _Node:
    """A* node ordered like upstream's: by f, then by g; equal nodes keep heapq's own order."""

    def __init__(self, cell: tuple[int, int], g: int, h: int) -> None:
        self.cell, self.g, self.f = cell, g, g + h

    def __lt__(self, other: _Node) -> bool:
        return (self.f, self.g) < (other.f, other.g)


def _manhattan(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def planned_step(start, goal, obstacles: set, agents: set) -> tuple[int, int]:
    """Upstream's window A*: a cell's parent is fixed when it is first pushed, the search may leave the
    window (unseen cells are free), and the first step of the path to the goal (or `start`) comes back."""
    parents: dict = {}
    frontier = [_Node(start, 0, _manhattan(start, goal))]
    current, expanded = None, 0
    while frontier and expanded < PLANNER_BUDGET and current != goal:
        node = heappop(frontier)
        current = node.cell
        expanded += 1
        for d_row, d_col in WINDOW_STEPS:
            cell = (current[0] + d_row, current[1] + d_col)
            if cell in obstacles or cell in parents or cell in agents:
                continue
            heappush(frontier, _Node(cell, node.g + 1, _manhattan(cell, goal)))
            parents[cell] = current
    if goal not in parents:
        return start
    cell = goal
    while parents[cell] != start:
        cell = parents[cell]
    return cell


def window_goal(observation: np.ndarray, radius: int) -> tuple[int, int]:
    """The goal cell of the window (its first marked cell), nudged as upstream does when it is an obstacle."""
    rows, cols = np.nonzero(observation[2])
    row, col = int(rows[0]), int(cols[0])
    if observation[0][row][col]:
        row -= 1 if row == 0 else 0
        row += 1 if row == 2 * radius else 0
        col -= 1 if col == 0 else 0
        col += 1 if col == 2 * radius else 0
    return row, col


class DeterministicPolicy:
    """Upstream's policy: each agent steps along its window A* path, then with probability 0.2 takes
    `randint(1, 4)` (up, down or left) from one `RandomState(42)` stream."""

    def __init__(self, random_seed: int = 42, random_rate: float = 0.2) -> None:
        self._rnd = np.random.RandomState(random_seed)
        self._random_rate = random_rate

    def act(self, observations: np.ndarray) -> list[int]:  # observations: (N, 3, F, F) float32
        radius = observations.shape[-1] // 2
        start = (radius, radius)
        actions = []
        for observation in observations:
            goal = window_goal(observation, radius)
            if goal == start:
                actions.append(0)
                continue
            obstacles = set(zip(*map(tuple, np.nonzero(observation[0])), strict=True))
            agents = set(zip(*map(tuple, np.nonzero(observation[1])), strict=True))
            step = planned_step(start, goal, obstacles, agents)
            actions.append(ACTION_OF_MOVE[(step[0] - start[0], step[1] - start[1])])
        for index in range(len(actions)):
            if self._rnd.random() < self._random_rate:
                actions[index] = self._rnd.randint(1, 4)
        return actions


def episode_metrics(config: PogemaConfig, episodes: int) -> list[dict]:
    """Metrics of the first `episodes` episodes of upstream's loop (one policy across episodes)."""
    env = GridEnv.from_pogema(config)
    policy = DeterministicPolicy()
    obs = env.reset()
    finished = []
    while len(finished) < episodes:
        obs, _, _, _, info = env.step(np.array([policy.act(obs[0])]))
        if info["metrics"][0] is not None:
            finished.append(info["metrics"][0])  # the env auto-resets: obs is the next episode's first
    return finished


GOLDEN = [
    (PogemaConfig(20, 8, 42, 64, "restart", obs_radius=4), [{"avg_throughput": 1.671875},
                                                            {"avg_throughput": 1.609375}]),
    (PogemaConfig(24, 8, 43, 64, "restart", obs_radius=4), [{"avg_throughput": 0.4375}]),
    (PogemaConfig(20, 8, 42, 32, "finish", obs_radius=2, density=0.2),
     [{"ep_length": 22.95, "ISR": 0.5, "CSR": 0.0}, {"ep_length": 15.55, "ISR": 0.9, "CSR": 0.0}]),
    (PogemaConfig(4, 5, 3, 32, "nothing", obs_radius=2, density=0.2),
     [{"ep_length": 21, "CSR": 1.0, "ISR": 1.0}, {"ep_length": 14, "CSR": 1.0, "ISR": 1.0}]),
    (PogemaConfig(7, 5, 3, 32, "nothing", obs_radius=2, density=0.2),
     [{"ep_length": 32, "CSR": 0.0, "ISR": 0.71428571428}]),
]  # fmt: skip


@pytest.mark.parametrize(("config", "expected"), GOLDEN, ids=lambda v: getattr(v, "on_target", ""))
def test_upstream_deterministic_policy_metrics(config, expected):
    got = episode_metrics(config, len(expected))
    for metrics, golden in zip(got, expected, strict=True):
        assert {key: metrics[key] for key in golden} == pytest.approx(golden)


@pytest.mark.pogema
def test_the_stand_in_config_has_gridconfigs_values():
    pogema = pytest.importorskip("pogema")
    for config, _ in GOLDEN:
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        real = pogema.GridConfig(**{k: v for k, v in fields.items() if v is not None})
        for name in [*fields, "width", "height"]:
            assert getattr(real, name) == getattr(config, name), name
