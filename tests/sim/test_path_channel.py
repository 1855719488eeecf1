"""The `path` channel, from per-agent distance windows and from cached full fields, against the channel drawn
down full-map breadth-first fields, bit for bit, over many steps: agents moving, goals changing (lifelong),
unreachable goals, maps changing, several envs. The `detour` channel from windows against the same channel
from full fields (which tests/sim/test_channels.py holds to a plain-Python reference)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim import GridEnv
from sim.actions import COL_STEPS, ROW_STEPS
from sim.channels import ExtraChannels
from sim.distance import DistanceCache, bfs_distance
from tests.sim.helpers import reference_path_plane


def full_field(obstacles: np.ndarray, goal) -> np.ndarray:
    """(H, W) int32: the full breadth-first field of `goal` (sim.distance, checked against Python there)."""
    height, width = obstacles.shape
    field = np.empty((height, width), dtype=np.int32)
    bfs_distance(obstacles, int(goal[0]), int(goal[1]), field, np.empty(height * width, dtype=np.int32))
    return field


def assert_paths_match(obs, channel, obstacles, positions, goals, radius, step):
    """Every agent's path plane in `obs` equals the one drawn down its goal's full field."""
    for env in range(positions.shape[0]):
        fields = {}
        for agent in range(positions.shape[1]):
            goal = tuple(goals[env, agent])
            if goal not in fields:
                fields[goal] = full_field(obstacles[env], goal)
            expected = reference_path_plane(fields[goal], positions[env, agent], radius)
            np.testing.assert_array_equal(
                obs[env, agent, channel], expected, err_msg=f"step {step}, env {env}, agent {agent}"
            )


def random_free_cells(rng, free: np.ndarray, count: int) -> np.ndarray:
    """(count, 2) int32 cells drawn uniformly among `free` (K, 2), the free cells of one map."""
    return free[rng.integers(0, len(free), count)].astype(np.int32)


def new_map(rng, height, width, density) -> np.ndarray:
    """(H, W) uint8 random obstacles with at least one free cell (often several components)."""
    grid = (rng.random((height, width)) < density).astype(np.uint8)
    grid[rng.integers(0, height), rng.integers(0, width)] = 0
    return grid


@st.composite
def journeys(draw):
    """Several envs of random maps, agents on free cells walking randomly, goals anywhere free (so some are
    unreachable), lifelong goal changes, and now and then a new map or agents placed anew on the same map."""
    num_envs = draw(st.integers(1, 3))
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    return dict(
        num_envs=num_envs, height=height, width=width, density=draw(st.floats(0.0, 0.45)),
        num_agents=draw(st.integers(1, 12)), radius=draw(st.integers(1, 5)), steps=draw(st.integers(1, 40)),
        goal_change=draw(st.floats(0.0, 0.5)), replace=draw(st.floats(0.0, 0.1)),
        source=draw(st.sampled_from(("fields", "windows", "tiny windows"))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(journeys())
def test_path_channel_equals_the_full_field_channel_over_many_steps(case):
    rng = np.random.default_rng(case["seed"])
    num_envs, num_agents, radius = case["num_envs"], case["num_agents"], case["radius"]
    height, width = case["height"], case["width"]
    obstacles = np.stack([new_map(rng, height, width, case["density"]) for _ in range(num_envs)])
    positions = np.zeros((num_envs, num_agents, 2), dtype=np.int32)
    goals = np.zeros_like(positions)
    for env in range(num_envs):
        free = np.argwhere(obstacles[env] == 0)
        positions[env] = random_free_cells(rng, free, num_agents)
        goals[env] = random_free_cells(rng, free, num_agents)
    size = 2 * radius + 1
    obs = np.full((num_envs, num_agents, 3, size, size), 7.0, dtype=np.float32)
    # a cache of one field holds too few: windows; 1 byte of windows: the smallest side, 4 (radius + 1)
    capacity = None if case["source"] == "fields" else 1
    budget = 1 if case["source"] == "tiny windows" else 64 * 2**20
    names = ("agents", "path", "detour")
    channels = ExtraChannels(names, DistanceCache(obstacles, capacity), window_budget=budget)
    assert channels.uses_windows == (capacity == 1 and obstacles.size > 1)
    from_fields, detours = ExtraChannels(names, DistanceCache(obstacles)), obs.copy()
    active = np.ones((num_envs, num_agents), dtype=bool)
    for step in range(case["steps"]):
        channels.write(obs, positions, goals, active)
        assert_paths_match(obs, 1, obstacles, positions, goals, radius, step)
        from_fields.write(detours, positions, goals, active)
        np.testing.assert_array_equal(obs[:, :, 2], detours[:, :, 2], err_msg=f"detour, step {step}")
        assert (obs[:, :, 0] == 7.0).all()  # other channels untouched
        for env in range(num_envs):
            if rng.random() < case["replace"]:  # a new episode: a new map in place, or the same one
                if rng.random() < 0.5:
                    obstacles[env] = new_map(rng, height, width, case["density"])
                free = np.argwhere(obstacles[env] == 0)
                positions[env] = random_free_cells(rng, free, num_agents)
                goals[env] = random_free_cells(rng, free, num_agents)
                continue
            free = np.argwhere(obstacles[env] == 0)
            for agent in range(num_agents):
                k = rng.integers(0, 5)
                if k < 4:  # a move onto a free cell, else stay
                    r, c = positions[env, agent, 0] + ROW_STEPS[k], positions[env, agent, 1] + COL_STEPS[k]
                    if 0 <= r < height and 0 <= c < width and obstacles[env, r, c] == 0:
                        positions[env, agent] = r, c
                if rng.random() < case["goal_change"]:
                    goals[env, agent] = random_free_cells(rng, free, 1)[0]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), num_envs=st.integers(1, 2), radius=st.integers(2, 5))
def test_path_channel_of_lifelong_env_equals_the_full_field_channel(seed, num_envs, radius):
    # 96 x 96: the default field cache holds fewer fields than the map has cells, so the env uses windows
    spec = Scenario(
        map=MapSpec(width=96, height=96, density=0.3), agents=AgentsSpec(count=24),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=30),
        observation=ObservationSpec(radius=radius, channels=("obstacles", "agents", "goal", "path")),
    )  # fmt: skip
    env = GridEnv(spec, num_envs, seed=seed)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    assert env._extras.channels.uses_windows  # the env's path channel reads windows
    goal_changes = 0
    for step in range(70):  # beyond the episode: new maps on the reset
        assert_paths_match(obs, 3, env.obstacles, env.positions, env.goals, radius, step)
        before = env.goals.copy()
        obs = env.step(rng.integers(0, 5, (env.num_envs, env.num_agents)))[0]
        goal_changes += int((env.goals != before).any(axis=-1).sum())
    assert goal_changes > 0


def serpentine(height: int, width: int) -> np.ndarray:
    """(1, H, W) uint8: one corridor winding over every other row, walls between them with alternate gaps."""
    grid = np.zeros((1, height, width), dtype=np.uint8)
    for wall in range(1, height, 2):
        grid[0, wall] = 1
        grid[0, wall, width - 1 if wall % 4 == 1 else 0] = 0
    return grid


def test_path_channel_exact_where_distances_exceed_the_windows_offset_range():
    # 129 corridors of 257 cells: the far end is about 33,300 moves from the goal, more than an offset from
    # the window's base can hold; a window filled there does not vouch for cells near the goal
    obstacles = serpentine(257, 257)
    goals = np.array([[[0, 0]]], dtype=np.int32)
    obs = np.zeros((1, 1, 2, 11, 11), dtype=np.float32)
    channels = ExtraChannels(("path", "detour"), DistanceCache(obstacles, capacity=1))
    field = full_field(obstacles[0], goals[0, 0])
    for cell in ((256, 256), (256, 250), (0, 3), (2, 255), (128, 100)):  # placed anew, same map and goal
        positions = np.array([[cell]], dtype=np.int32)
        channels.write(obs, positions, goals, np.ones((1, 1), dtype=bool))
        np.testing.assert_array_equal(obs[0, 0, 0], reference_path_plane(field, cell, 5), err_msg=str(cell))
        np.testing.assert_array_equal(obs[0, 0, 1], obs[0, 0, 0])  # alone, the detour is the path
    assert field[256, 256] > 33_000
