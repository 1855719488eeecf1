"""Distance fields: the numba BFS against a plain-Python BFS, and the cache against fresh fields."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.distance import UNREACHABLE, DistanceCache, bfs_distance
from tests.sim.helpers import reference_bfs


@st.composite
def maps_and_goals(draw):
    height = draw(st.integers(1, 12))
    width = draw(st.integers(1, 12))
    density = draw(st.floats(0.0, 0.6))
    seed = draw(st.integers(0, 2**32 - 1))
    obstacles = (np.random.default_rng(seed).random((height, width)) < density).astype(np.uint8)
    goal = (draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1)))
    return obstacles, goal


@given(maps_and_goals())
def test_bfs_equals_plain_python_bfs(case):
    obstacles, goal = case
    out = np.empty(obstacles.shape, dtype=np.int32)
    bfs_distance(obstacles, goal[0], goal[1], out, np.empty(obstacles.size, dtype=np.int32))
    np.testing.assert_array_equal(out, reference_bfs(obstacles, goal))


@given(maps_and_goals())
def test_adjacent_free_cells_differ_by_at_most_one_and_every_reachable_cell_has_a_downhill_step(case):
    obstacles, goal = case
    out = np.empty(obstacles.shape, dtype=np.int32)
    bfs_distance(obstacles, goal[0], goal[1], out, np.empty(obstacles.size, dtype=np.int32))
    height, width = obstacles.shape
    for row in range(height):
        for col in range(width):
            if out[row, col] == UNREACHABLE:
                continue
            neighbours = [
                out[r, c]
                for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
                if 0 <= r < height and 0 <= c < width and not obstacles[r, c]
            ]
            assert all(abs(int(d) - int(out[row, col])) == 1 for d in neighbours)  # 4-grid is bipartite
            if out[row, col] > 0:
                assert min(neighbours) == out[row, col] - 1


def random_cells(rng: np.random.Generator, batch: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    rows, cols = rng.integers(0, shape[0], batch), rng.integers(0, shape[1], batch)
    return np.stack([rows, cols], axis=-1).astype(np.int32)


@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_cache_answers_equal_fresh_fields_whatever_the_capacity(seed, capacity):
    rng = np.random.default_rng(seed)
    obstacles = (rng.random((3, 7, 9)) < 0.3).astype(np.uint8)
    cache = DistanceCache(obstacles, capacity=capacity)
    for _ in range(4):
        positions = random_cells(rng, (3, 5), (7, 9))
        goals = random_cells(rng, (3, 5), (7, 9))
        got = cache.distance_to_goal(positions, goals)
        for env in range(3):
            for agent in range(5):
                field = reference_bfs(obstacles[env], tuple(goals[env, agent]))
                assert got[env, agent] == field[tuple(positions[env, agent])], (env, agent)


def test_cache_shares_a_field_between_agents_with_the_same_goal_and_evicts_least_recently_used():
    obstacles = np.zeros((1, 4, 4), dtype=np.uint8)
    cache = DistanceCache(obstacles, capacity=2)
    cache.field(0, (0, 0))
    cache.field(0, (3, 3))
    cache.field(0, (0, 0))  # (3, 3) is now the least recently used
    cache.field(0, (1, 1))
    cached = {int(key) for key in cache.arrays.slot_key}
    assert cached == {0 * 4 + 0, 1 * 4 + 1}


def test_cache_drops_fields_when_the_map_changes():
    obstacles = np.zeros((2, 3, 3), dtype=np.uint8)
    cache = DistanceCache(obstacles)
    assert cache.field(0, (0, 0))[2, 2] == 4
    assert cache.field(1, (0, 0))[2, 2] == 4
    obstacles[0, 1, :2] = 1  # a wall with a gap on the right: (2, 0) now needs a detour
    assert cache.field(0, (0, 0))[2, 0] == 6
    assert cache.field(1, (0, 0))[2, 0] == 2


def test_obstacle_goal_gives_an_all_unreachable_field():
    obstacles = np.ones((1, 2, 2), dtype=np.uint8)
    assert (DistanceCache(obstacles).field(0, (0, 0)) == UNREACHABLE).all()


def test_rejects_a_map_array_of_the_wrong_type():
    with pytest.raises(ValueError, match=r"\(E, H, W\) uint8"):
        DistanceCache(np.zeros((3, 3), dtype=np.uint8))
