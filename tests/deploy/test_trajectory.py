"""Smooth trajectories: exact peaks and closest approaches against dense sampling, merging, tracking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deploy import trajectory
from deploy.waypoints import GridToWorld

SAMPLES = 2001


@st.composite
def walks(draw):
    """(S+1, N, 2) grid paths of unit moves or waits (drones may meet: the checks must still be exact)."""
    drones, steps = draw(st.integers(2, 4)), draw(st.integers(1, 5))
    start = draw(arrays(np.int64, (drones, 2), elements=st.integers(0, 3)))
    moves = draw(arrays(np.int64, (steps, drones), elements=st.integers(0, 4)))
    delta = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])[moves]
    return np.concatenate([start[None], start[None] + np.cumsum(delta, axis=0)])


def pieces_of(cells: np.ndarray, step: float) -> np.ndarray:
    return trajectory.scaled(trajectory.unit_pieces(GridToWorld().cell_centres(cells)), step)


def dense(pieces: np.ndarray, step: float, order: int = 0) -> tuple[np.ndarray, np.ndarray]:
    times = np.linspace(0.0, pieces.shape[1] * step, SAMPLES * pieces.shape[1])
    return times, trajectory.positions_at(pieces, step, times, order)  # (K,), (K, N, 3)


@settings(deadline=None, max_examples=30)
@given(walks(), st.floats(0.8, 3.0))
@example(np.array([[[1, 1], [0, 1]], [[1, 1], [1, 1]]]), 3.0)  # they meet at the end: 0 m, not 5e-7
def test_closest_approach_is_the_minimum_of_dense_sampling(cells, step):
    pieces = pieces_of(cells, step)
    exact = trajectory.closest_approach(pieces, step)
    times, positions = dense(pieces, step)
    first, second = np.triu_indices(cells.shape[1], k=1)
    gaps = np.linalg.norm(positions[:, first] - positions[:, second], axis=-1)
    sampled = gaps.min()
    speed = np.linalg.norm(dense(pieces, step, 1)[1], axis=-1).max()
    assert exact.distance_m <= sampled + 1e-9
    assert sampled - exact.distance_m <= 2 * speed * (times[1] - times[0]) + 1e-9
    at = trajectory.positions_at(pieces, step, np.array([exact.time_s]))[0]
    assert np.linalg.norm(at[exact.first] - at[exact.second]) == pytest.approx(exact.distance_m, abs=1e-6)


@settings(deadline=None, max_examples=30)
@given(walks())
def test_peak_speed_and_acceleration_are_the_maxima_of_dense_sampling(cells):
    unit = trajectory.unit_pieces(GridToWorld().cell_centres(cells))
    speed, accel = trajectory.unit_peaks(unit)
    for order, exact in ((1, speed), (2, accel)):
        sampled = np.linalg.norm(dense(unit, 1.0, order)[1], axis=-1).max()
        assert sampled <= exact + 1e-9 and exact - sampled <= 1e-3 * max(exact, 1.0)


@settings(deadline=None, max_examples=30)
@given(walks(), st.floats(0.8, 3.0))
def test_merged_pieces_fly_the_same_trajectory(cells, step):
    pieces = pieces_of(cells, step)
    for drone in range(cells.shape[1]):
        merged = trajectory.merged_pieces(pieces[drone], step)
        assert sum(d for d, _ in merged) == pytest.approx(cells.shape[0] * step - step)
        start = 0.0
        for duration, coefficients in merged:
            for t in np.linspace(0.0, duration, 7):
                expected = trajectory.positions_at(pieces[drone : drone + 1], step, np.array([start + t]))[
                    0, 0
                ]
                np.testing.assert_allclose(coefficients @ t ** np.arange(8), expected, atol=1e-7)
            start += duration


def test_the_tracker_lags_more_when_its_acceleration_is_limited():
    cells = np.array([[[0, 0]], [[0, 1]], [[0, 2]], [[1, 2]], [[1, 2]]])
    pieces = pieces_of(cells, 1.5)
    _, loose = trajectory.tracked_approach(pieces, 1.5, 10.0)
    _, tight = trajectory.tracked_approach(pieces, 1.5, 0.2)
    assert 0.0 < loose < 0.1 and tight > 2 * loose
