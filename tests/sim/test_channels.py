"""Extra observation channels (`path`, `detour`, `other_goals`) against plain-Python references."""

import heapq

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim import GridEnv
from sim.channels import DETOUR_PENALTY, ExtraChannels
from sim.distance import UNREACHABLE, DistanceCache
from tests.sim.helpers import reference_bfs, reference_path_plane


def reference_other_goals_plane(positions, goals, active, agent, radius):
    size = 2 * radius + 1
    plane = np.zeros((size, size), dtype=np.float32)
    for other in range(len(goals)):
        a, b = goals[other] - positions[agent] + radius
        if other != agent and active[other] and 0 <= a < size and 0 <= b < size:
            plane[a, b] = 1
    return plane


@st.composite
def worlds(draw):
    height, width = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    obstacles = (rng.random((1, height, width)) < draw(st.floats(0.0, 0.5))).astype(np.uint8)
    num_agents = draw(st.integers(1, 10))
    positions = np.stack([rng.integers(0, height, num_agents), rng.integers(0, width, num_agents)], -1)
    goals = np.stack([rng.integers(0, height, num_agents), rng.integers(0, width, num_agents)], -1)
    active = rng.random(num_agents) < 0.8
    radius = draw(st.integers(1, 4))
    return obstacles, positions[None].astype(np.int32), goals[None].astype(np.int32), active[None], radius


@given(worlds())
def test_path_and_other_goals_channels_match_references(world):
    obstacles, positions, goals, active, radius = world
    size = 2 * radius + 1
    obs = np.full((1, positions.shape[1], 4, size, size), 7.0, dtype=np.float32)
    ExtraChannels(("obstacles", "path", "agents", "other_goals"), DistanceCache(obstacles)).write(
        obs, positions, goals, active
    )
    for agent in range(positions.shape[1]):
        distance = reference_bfs(obstacles[0], tuple(goals[0, agent]))
        expected_path = reference_path_plane(distance, positions[0, agent], radius)
        np.testing.assert_array_equal(obs[0, agent, 1], expected_path, err_msg=f"path of agent {agent}")
        expected_goals = reference_other_goals_plane(positions[0], goals[0], active[0], agent, radius)
        np.testing.assert_array_equal(obs[0, agent, 3], expected_goals, err_msg=f"goals of agent {agent}")
    assert (obs[:, :, [0, 2]] == 7.0).all()  # other channels untouched


def test_path_on_an_open_corridor_is_a_straight_line_to_the_goal():
    obstacles = np.zeros((1, 3, 9), dtype=np.uint8)
    obs = np.zeros((1, 1, 1, 5, 5), dtype=np.float32)
    positions, goals = np.array([[[1, 2]]], dtype=np.int32), np.array([[[1, 8]]], dtype=np.int32)
    ExtraChannels(("path",), DistanceCache(obstacles)).write(obs, positions, goals, np.array([[True]]))
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[2, 2:] = 1  # centre, then right until the window edge
    np.testing.assert_array_equal(obs[0, 0, 0], expected)


def reference_detour_plane(obstacles, positions, active, agent, goal, radius, penalty=DETOUR_PENALTY):
    """The `detour` channel in plain Python: Dijkstra from the goal and the window's exits over the window's
    cells (an occupied cell costs 1 + penalty to enter), then the first cheapest move in action order."""
    size = 2 * radius + 1
    plane = np.zeros((size, size), dtype=np.float32)
    distance = reference_bfs(obstacles, tuple(goal))
    height, width = obstacles.shape
    row, col = (int(v) for v in positions[agent])
    occupied = {tuple(p) for other, p in enumerate(positions) if other != agent and active[other]}

    def in_window(r, c):
        return abs(r - row) <= radius and abs(c - col) <= radius

    def free(r, c):
        return 0 <= r < height and 0 <= c < width and distance[r, c] != UNREACHABLE

    def enter(r, c):
        return 1 + (penalty if (r, c) in occupied else 0)

    moves = ((-1, 0), (1, 0), (0, -1), (0, 1))
    cost = {}
    for r in range(row - radius, row + radius + 1):
        for c in range(col - radius, col + radius + 1):
            if free(r, c):
                exits = [1 + distance[r + dr, c + dc] for dr, dc in moves
                         if free(r + dr, c + dc) and not in_window(r + dr, c + dc)]  # fmt: skip
                cost[(r, c)] = min([UNREACHABLE] + exits + ([0] if distance[r, c] == 0 else []))
    queue = [(value, cell) for cell, value in cost.items()]
    heapq.heapify(queue)
    done = set()
    while queue:
        value, (r, c) = heapq.heappop(queue)
        if (r, c) in done or value >= UNREACHABLE:
            continue
        done.add((r, c))
        for dr, dc in moves:
            n = (r + dr, c + dc)
            if n in cost and n not in done and value + enter(r, c) < cost[n]:
                cost[n] = value + enter(r, c)
                heapq.heappush(queue, (cost[n], n))
    cell = (row, col)
    if cost.get(cell, UNREACHABLE) >= UNREACHABLE:
        return plane
    while True:
        plane[cell[0] - row + radius, cell[1] - col + radius] = 1
        if cost[cell] == 0:
            return plane
        for dr, dc in moves:
            n = (cell[0] + dr, cell[1] + dc)
            if not free(*n):
                continue
            if not in_window(*n):
                if 1 + distance[n] == cost[cell]:
                    return plane
            elif enter(*n) + cost[n] == cost[cell]:
                cell = n
                break


@given(worlds())
def test_detour_channel_matches_reference(world):
    obstacles, positions, goals, active, radius = world
    size = 2 * radius + 1
    obs = np.full((1, positions.shape[1], 3, size, size), 7.0, dtype=np.float32)
    ExtraChannels(("agents", "detour", "path"), DistanceCache(obstacles)).write(obs, positions, goals, active)
    for agent in range(positions.shape[1]):
        goal = goals[0, agent]
        expected = reference_detour_plane(obstacles[0], positions[0], active[0], agent, goal, radius)
        np.testing.assert_array_equal(obs[0, agent, 1], expected, err_msg=f"detour of agent {agent}")
        if not np.delete(active[0], agent).any():  # nobody else on the map: the plain shortest path
            np.testing.assert_array_equal(obs[0, agent, 1], obs[0, agent, 2])
    assert (obs[:, :, 0] == 7.0).all()


@given(worlds())
def test_detour_channel_without_other_agents_is_the_path_channel(world):
    obstacles, positions, goals, _, radius = world
    size = 2 * radius + 1
    alone = np.zeros((1, positions.shape[1]), dtype=bool)  # the others inactive: none is seen
    obs = np.zeros((1, positions.shape[1], 2, size, size), dtype=np.float32)
    for agent in range(positions.shape[1]):
        alone[:] = False
        alone[0, agent] = True
        ExtraChannels(("detour", "path"), DistanceCache(obstacles)).write(obs, positions, goals, alone)
        np.testing.assert_array_equal(obs[0, agent, 0], obs[0, agent, 1], err_msg=f"agent {agent}")


def test_detour_goes_around_an_agent_in_its_way():
    obstacles = np.zeros((1, 3, 9), dtype=np.uint8)
    positions = np.array([[[1, 2], [1, 4]]], dtype=np.int32)  # agent 1 stands on agent 0's straight line
    goals = np.array([[[1, 8], [0, 0]]], dtype=np.int32)
    obs = np.zeros((1, 2, 2, 5, 5), dtype=np.float32)
    active = np.ones((1, 2), dtype=bool)
    ExtraChannels(("detour", "path"), DistanceCache(obstacles)).write(obs, positions, goals, active)
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[2, 2], expected[1, 2:] = 1, 1  # up first (action order), then right along the top row
    np.testing.assert_array_equal(obs[0, 0, 0], expected)
    assert obs[0, 0, 1][2, 2:].all()  # the path channel goes straight through


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), on_target=st.sampled_from(("restart", "finish")))
def test_env_writes_the_detour_channel_of_its_state(seed, on_target):
    # agents that finished leave the map under `finish`: they are not in anyone's way any more
    spec = Scenario(
        map=MapSpec(width=9, height=9, density=0.2), agents=AgentsSpec(count=10),
        dynamics=DynamicsSpec(collision_system="soft", on_target=on_target, max_episode_steps=40),
        observation=ObservationSpec(radius=2, channels=("obstacles", "agents", "detour")),
    )  # fmt: skip
    env = GridEnv(spec, 2, seed=seed)
    obs, rng = env.reset(), np.random.default_rng(seed)
    for _ in range(12):
        for e in range(2):
            for agent in range(env.num_agents):
                if not env.active[e, agent]:
                    continue
                expected = reference_detour_plane(
                    env.obstacles[e], env.positions[e], env.active[e], agent, env.goals[e, agent], 2
                )
                np.testing.assert_array_equal(obs[e, agent, 2], expected)
        obs = env.step(rng.integers(0, 5, (2, env.num_agents)))[0]
