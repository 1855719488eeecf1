"""What the simulator tests share: a plain-Python BFS, the step-by-step comparison against POGEMA 1.4.0 (the
caller skips without pogema), and a curriculum of map sizes."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections import deque

import numpy as np

import scenarios
from scenarios.schema import Variants
from sim import GridEnv
from sim.distance import UNREACHABLE


def reference_bfs(obstacles: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """(H, W) int64 shortest-path lengths to `goal` by a plain-Python BFS (UNREACHABLE where none)."""
    height, width = obstacles.shape
    distance = np.full((height, width), UNREACHABLE, dtype=np.int64)
    if obstacles[goal]:
        return distance
    distance[goal] = 0
    frontier = deque([goal])
    while frontier:
        row, col = frontier.popleft()
        for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)):
            if 0 <= r < height and 0 <= c < width and not obstacles[r, c] and distance[r, c] == UNREACHABLE:
                distance[r, c] = distance[row, col] + 1
                frontier.append((r, c))
    return distance


def reference_path_plane(distance: np.ndarray, position, radius: int) -> np.ndarray:
    """(2r+1, 2r+1) float32: the `path` channel of an agent at `position`, drawn in plain Python down the full
    distance field of its goal, each step the first downhill move in order up, down, left, right."""
    size = 2 * radius + 1
    plane = np.zeros((size, size), dtype=np.float32)
    cell = (int(position[0]), int(position[1]))
    if distance[cell] == UNREACHABLE:
        return plane
    while True:
        a, b = cell[0] - position[0] + radius, cell[1] - position[1] + radius
        if not (0 <= a < size and 0 <= b < size):
            return plane
        plane[a, b] = 1
        if distance[cell] == 0:
            return plane
        cell = next(
            (cell[0] + dr, cell[1] + dc)
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= cell[0] + dr < distance.shape[0]
            and 0 <= cell[1] + dc < distance.shape[1]
            and distance[cell[0] + dr, cell[1] + dc] == distance[cell] - 1
        )


def random_actions(env: GridEnv, rng: np.random.Generator) -> np.ndarray:
    """(1, N) actions drawn uniformly from all of the env's actions."""
    return rng.integers(0, env.num_actions, size=(1, env.num_agents))


def _state_mismatch(pogema_env, env: GridEnv, observation, reference_obs, radius: int) -> str | None:
    grid = pogema_env.unwrapped.grid
    height, width = env.map_shapes[0]
    checks = {
        "positions": (np.array(grid.positions_xy) - radius, env.positions[0]),
        "goals": (np.array(grid.finishes_xy) - radius, env.goals[0]),
        "is_active": (np.array([grid.is_active[i] for i in range(env.num_agents)]), env.active[0]),
        "occupancy": (grid.positions, env._state.occupancy[0, : height + 2 * radius, : width + 2 * radius]),
    }
    if isinstance(observation, dict):
        for key, value in observation.items():
            ours = value[0]
            if key == "global_obstacles":
                ours = ours[: height + 2 * radius, : width + 2 * radius]
                checks[key] = (reference_obs[0][key], ours)
            else:
                checks[key] = (np.array([np.asarray(o[key]) for o in reference_obs]), ours)
    else:
        checks["observation"] = (np.array(reference_obs), observation[0])
    for name, (expected, actual) in checks.items():
        if not np.array_equal(np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)):
            return f"{name}: pogema {np.asarray(expected).tolist()} vs ours {np.asarray(actual).tolist()}"
    return None


def first_mismatch(grid_config, policy, steps: int, seed: int = 0, env: GridEnv | None = None) -> str | None:
    """Runs POGEMA and GridEnv side by side for `steps` steps (continuing past the episode end); returns a
    message naming the first step and quantity that differ, or None."""
    warnings.filterwarnings("ignore", category=UserWarning)
    # POGEMA shuffles the config's possible-position lists in place: give it its own copy.
    from pogema import pogema_v0

    pogema_env = pogema_v0(grid_config=copy.deepcopy(grid_config))
    reference_obs, _ = pogema_env.reset()
    env = env or GridEnv.from_pogema(grid_config)
    env.auto_reset = False
    observation = env.reset()
    radius = grid_config.obs_radius
    rng = np.random.default_rng(seed)
    for step in range(steps):
        problem = _state_mismatch(pogema_env, env, observation, reference_obs, radius)
        if problem:
            return f"step {step}: {problem}"
        actions = policy(env, rng)
        reference_obs, rewards, terminated, truncated, infos = pogema_env.step(actions[0].copy())
        observation, our_rewards, our_terminated, our_truncated, info = env.step(actions)
        outcomes = {
            "rewards": (np.array(rewards, dtype=np.float32), our_rewards[0]),
            "terminated": (np.array(terminated), our_terminated[0]),
            "truncated": (np.array(truncated), our_truncated[0]),
            "info active": (np.array([i["is_active"] for i in infos]), info["active"][0]),
        }
        for name, (expected, actual) in outcomes.items():
            if not np.array_equal(expected, actual):
                return f"step {step}: {name}: pogema {expected.tolist()} vs ours {actual.tolist()}"
        if infos[0].get("metrics") != info["metrics"][0]:
            return f"step {step}: metrics: pogema {infos[0].get('metrics')} vs ours {info['metrics'][0]}"
    return None


def curriculum(sizes: list[tuple[int, int]], limits: list[int], on_target: str) -> scenarios.Scenario:
    """`random` with one variant per map size, each with its own episode limit."""
    base = scenarios.load("random")
    return dataclasses.replace(
        base,
        map=dataclasses.replace(base.map, density=0.2),
        agents=dataclasses.replace(base.agents, count=2),
        dynamics=dataclasses.replace(base.dynamics, on_target=on_target, collision_system="soft"),
        observation=dataclasses.replace(base.observation, radius=2),
        variants=Variants(
            key="map.height",
            values=tuple(height for height, _ in sizes),
            linked={
                "map.width": tuple(width for _, width in sizes),
                "dynamics.max_episode_steps": tuple(limits),
            },
        ),
    )
