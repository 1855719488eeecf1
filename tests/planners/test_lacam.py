"""LaCAM against an exhaustive search of joint configurations (same solvability on every tiny instance),
and its paths on larger random instances: valid, conflict-free, executed exactly by the simulator."""

from __future__ import annotations

import heapq
import itertools
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.actions import actions_of_moves
from sim.kernels.dynamics import MOVES
from sim.planners.lacam import lacam
from tests.planners.instances import conflicts, env_for, instance


def solvable(obstacles: np.ndarray, starts: np.ndarray, goals: np.ndarray) -> bool:
    """Breadth-first search over joint configurations: every agent moves or stays, no two agents end on one
    cell or swap cells."""
    start = tuple(map(tuple, starts.tolist()))
    goal = tuple(map(tuple, goals.tolist()))
    seen, frontier = {start}, deque([start])
    while frontier:
        config = frontier.popleft()
        if config == goal:
            return True
        for moved in joint_moves(obstacles, config):
            if moved not in seen:
                seen.add(moved)
                frontier.append(moved)
    return False


def joint_moves(obstacles: np.ndarray, config: tuple) -> list[tuple]:
    """Every joint move of the agents at `config` ((row, col) per agent): each moves or stays, no two end on
    one cell or swap cells."""
    height, width = obstacles.shape
    options = [
        [
            (r + int(dr), c + int(dc))
            for dr, dc in MOVES
            if 0 <= r + dr < height and 0 <= c + dc < width and not obstacles[r + dr, c + dc]
        ]
        for r, c in config
    ]
    return [
        moved
        for moved in itertools.product(*options)
        if len(set(moved)) == len(moved)
        and not any(
            moved[i] == config[j] and moved[j] == config[i] for i in range(len(config)) for j in range(i)
        )
    ]


def optimal_sum_of_loss(obstacles: np.ndarray, starts: np.ndarray, goals: np.ndarray) -> int | None:
    """Dijkstra over joint configurations: the least sum of loss (per step, the agents not staying on their
    goals) from starts to goals; None when they are not reachable."""
    start, goal = tuple(map(tuple, starts.tolist())), tuple(map(tuple, goals.tolist()))
    best, frontier = {start: 0}, [(0, start)]
    while frontier:
        cost, config = heapq.heappop(frontier)
        if config == goal:
            return cost
        if cost > best[config]:
            continue
        for moved in joint_moves(obstacles, config):
            step = sum(1 for a, b, g in zip(config, moved, goal, strict=True) if not a == b == g)
            if cost + step < best.get(moved, cost + step + 1):
                best[moved] = cost + step
                heapq.heappush(frontier, (cost + step, moved))
    return None


def check_paths(obstacles: np.ndarray, starts: np.ndarray, goals: np.ndarray, paths: np.ndarray) -> None:
    np.testing.assert_array_equal(paths[0], starts)
    np.testing.assert_array_equal(paths[-1], goals)
    assert (obstacles[paths[..., 0], paths[..., 1]] == 0).all()
    assert (np.abs(np.diff(paths, axis=0)).sum(axis=-1) <= 1).all()  # a move or a stay per step
    everyone = np.ones(len(starts), dtype=bool)
    for before, after in itertools.pairwise(paths):
        assert conflicts(before, after, everyone) == (0, 0)


@st.composite
def instances(draw, largest_side: int, densest: float, most_agents: int):
    """(seed, obstacles, starts, goals): a random connected map of 2 to `largest_side` cells a side, up to
    `densest` obstacles, up to `most_agents` agents."""
    seed = draw(st.integers(0, 2**31 - 1))
    height, width = draw(st.integers(2, largest_side)), draw(st.integers(2, largest_side))
    density, agents = draw(st.floats(0.0, densest)), draw(st.integers(1, most_agents))
    return (seed, *instance(seed, height, width, density, agents))


@settings(deadline=None, max_examples=80)
@given(case=instances(largest_side=4, densest=0.5, most_agents=3), swap=st.booleans())
def test_lacam_solves_exactly_the_instances_an_exhaustive_search_solves(case, swap):
    seed, obstacles, starts, goals = case
    result = lacam(obstacles, starts, goals, seed=seed, swap=swap)
    assert result.solved == solvable(obstacles, starts, goals)
    assert result.solved != result.exhausted  # without a node limit: a solution or a proof of none
    if result.solved:
        check_paths(obstacles, starts, goals, result.paths)


@st.composite
def small_instances(draw):
    """Instances whose joint configurations an exhaustive search and LaCAM*'s complete search both cover
    quickly: up to 3 agents on up to 9 cells, or up to 2 on up to 16."""
    agents = draw(st.integers(1, 3))
    largest = 3 if agents == 3 else 4
    height, width = draw(st.integers(2, largest)), draw(st.integers(2, largest))
    seed, density = draw(st.integers(0, 2**31 - 1)), draw(st.floats(0.0, 0.5))
    return (seed, *instance(seed, height, width, density, agents))


@settings(deadline=None, max_examples=60)
@given(case=small_instances(), swap=st.booleans())
def test_lacam_star_ends_with_the_optimal_sum_of_loss(case, swap):
    seed, obstacles, starts, goals = case
    optimal = optimal_sum_of_loss(obstacles, starts, goals)
    result = lacam(obstacles, starts, goals, seed=seed, swap=swap, refine=True)
    assert result.exhausted  # the whole search ran: a proof of optimality, or of no solution
    assert result.cost == optimal
    if result.solved:
        check_paths(obstacles, starts, goals, result.paths)
        first = lacam(obstacles, starts, goals, seed=seed, swap=swap)
        assert first.cost >= result.cost  # refining never makes it worse than the first solution


def test_lacam_star_improves_on_lacam_within_a_step_limit():
    obstacles, starts, goals = instance(2, 10, 10, 0.2, 16)
    first = lacam(obstacles, starts, goals, seed=1)
    refined = lacam(obstacles, starts, goals, seed=1, refine=True, step_limit=first.steps + 3_000)
    assert first.solved and refined.solved and not refined.exhausted
    assert refined.cost < first.cost
    check_paths(obstacles, starts, goals, refined.paths)


def test_the_exhaustive_search_tells_solvable_from_unsolvable_instances():
    corridor = np.array([[0, 0, 0]], dtype=np.uint8)
    # two agents in a one-cell-wide corridor cannot pass each other; in a 2 x 2 room they can
    assert not solvable(corridor, np.array([[0, 0], [0, 2]]), np.array([[0, 2], [0, 0]]))
    room = np.zeros((2, 2), dtype=np.uint8)
    assert solvable(room, np.array([[0, 0], [1, 1]]), np.array([[1, 1], [0, 0]]))
    assert not lacam(corridor, np.array([[0, 0], [0, 2]]), np.array([[0, 2], [0, 0]])).solved


@settings(deadline=None, max_examples=40)
@given(case=instances(largest_side=12, densest=0.3, most_agents=24), swap=st.booleans())
def test_lacam_paths_are_conflict_free_and_the_simulator_executes_them_exactly(case, swap):
    seed, obstacles, starts, goals = case
    room = max(1, int((obstacles == 0).sum()) // 3)  # at most a third of the free cells hold an agent
    starts, goals = starts[:room], goals[:room]
    result = lacam(obstacles, starts, goals, seed=seed, step_limit=5_000, swap=swap)
    if not result.solved:
        return
    paths = result.paths
    check_paths(obstacles, starts, goals, paths)
    env = env_for(obstacles, starts, goals, "soft", "nothing", steps=len(paths) + 1)
    for after in paths[1:]:
        actions = actions_of_moves(after - env.positions[0])  # (N,)
        env.step(actions[None])
        np.testing.assert_array_equal(env.positions[0], after)


def test_the_same_seed_gives_the_same_paths():
    obstacles, starts, goals = instance(3, 10, 10, 0.2, 20)
    first, again = lacam(obstacles, starts, goals, seed=5), lacam(obstacles, starts, goals, seed=5)
    assert first.solved
    np.testing.assert_array_equal(first.paths, again.paths)


def test_a_step_limit_stops_the_search_without_claiming_there_is_no_solution():
    corridor = np.array([[0, 0, 0]], dtype=np.uint8)
    result = lacam(corridor, np.array([[0, 0], [0, 2]]), np.array([[0, 2], [0, 0]]), step_limit=1)
    assert not result.solved and not result.exhausted and result.steps == 1


def test_a_step_limit_bounds_the_search_of_a_large_unsolvable_instance():
    # four agents on a 30-cell line must pass each other: no solution, and C(30, 4) configurations with up
    # to 5**4 constraints each before the search could prove it
    line = np.zeros((1, 30), dtype=np.uint8)
    starts = np.array([[0, 0], [0, 1], [0, 28], [0, 29]])
    result = lacam(line, starts, starts[::-1].copy(), step_limit=2_000)
    assert not result.solved and not result.exhausted and result.steps == 2_000


@pytest.mark.parametrize(
    ("starts", "goals", "message"),
    [
        ([[0, 0], [0, 0]], [[0, 1], [0, 2]], "starts: two agents share a cell"),
        ([[0, 0]], [[0, 9]], r"goals\[0\]: outside the \(2, 3\) map"),
        ([[0, 0]], [[1, 1]], r"goals\[0\]: on an obstacle"),
        ([[0, 0]], [[0, 1], [0, 2]], r"goals: expected \(N, 2\)"),
    ],
)
def test_bad_instances_are_one_line_errors(starts, goals, message):
    obstacles = np.array([[0, 0, 0], [0, 1, 0]], dtype=np.uint8)
    with pytest.raises(ValueError, match=message):
        lacam(obstacles, np.array(starts), np.array(goals))
