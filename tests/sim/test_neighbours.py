"""Neighbour lists: the bucketed kernel against a brute-force O(N^2) reference."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.neighbours import NeighbourFinder


def brute_force(positions: np.ndarray, active: np.ndarray, k: int, radius: int) -> np.ndarray:
    num_envs, num_agents = active.shape
    out = np.full((num_envs, num_agents, k), -1, dtype=np.int32)
    for env in range(num_envs):
        for agent in range(num_agents):
            if not active[env, agent]:
                continue
            candidates = []
            for other in range(num_agents):
                distance = int(np.abs(positions[env, other] - positions[env, agent]).max())
                if other != agent and active[env, other] and distance <= radius:
                    candidates.append((distance, other))
            nearest = [other for _, other in sorted(candidates)[:k]]
            out[env, agent, : len(nearest)] = nearest
    return out


@st.composite
def swarms(draw):
    height, width = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    num_agents = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    positions = np.stack(
        [rng.integers(0, height, (2, num_agents)), rng.integers(0, width, (2, num_agents))], axis=-1
    ).astype(np.int32)  # cells may repeat: the kernel must not rely on one agent per cell
    active = rng.random((2, num_agents)) < draw(st.floats(0.3, 1.0))
    return positions, active, (height, width)


@given(swarms(), st.integers(1, 8), st.floats(0.0, 25.0))
def test_equals_brute_force(swarm, k, radius):
    positions, active, shape = swarm
    got = NeighbourFinder(positions.shape[1], shape, k, radius)(positions, active)
    np.testing.assert_array_equal(got, brute_force(positions, active, k, int(radius)))


def test_nearest_first_ties_by_lower_index_and_inactive_rows_empty():
    positions = np.array([[[5, 5], [5, 7], [3, 5], [5, 6], [9, 9]]], dtype=np.int32)
    active = np.array([[True, True, True, True, False]])
    got = NeighbourFinder(5, (10, 10), 3, 2.5)(positions, active)
    assert got[0, 0].tolist() == [3, 1, 2]  # distance 1, then 2 and 2 by index
    assert got[0, 4].tolist() == [-1, -1, -1]
    assert 4 not in got[0]


def test_rejects_nonpositive_k():
    with pytest.raises(ValueError, match="K must be >= 1"):
        NeighbourFinder(3, (4, 4), 0, 2.0)
