"""Waypoint plans: the continuous-time separation check and the flight files."""

from __future__ import annotations

import csv
import io
import runpy
import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deploy.errors import ExportError, UnsafePlanError
from deploy.waypoints import (
    GridToWorld,
    check_separation,
    closest_approach,
    crazyswarm_csv,
    make_plan,
    plan_files,
)

SAMPLES = 4001
coordinates = arrays(np.float64, (2, 2, 3), elements=st.floats(-5, 5, allow_nan=False))


def sampled_min_distance(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Brute force: distance of each pair at SAMPLES instants of the step. start, end: (P, 2, 3)."""
    u = np.linspace(0.0, 1.0, SAMPLES)[:, None, None, None]  # (U, 1, 1, 1)
    moving = start[None] + u * (end - start)[None]  # (U, P, 2, 3)
    return np.linalg.norm(moving[..., 0, :] - moving[..., 1, :], axis=-1).min(axis=0)


@given(coordinates, coordinates)
def test_closest_approach_matches_dense_sampling(start, end):
    exact = closest_approach(start, end)
    sampled = sampled_min_distance(start, end)
    relative_speed = np.linalg.norm((end[:, 0] - start[:, 0]) - (end[:, 1] - start[:, 1]), axis=-1)
    assert np.all(exact <= sampled + 1e-9)
    assert np.all(sampled - exact <= relative_speed / (SAMPLES - 1) + 1e-9)


def test_corner_following_is_checked_between_waypoints():
    # A moves right into the cell B leaves downwards: 0.5 m apart at both ends, 0.354 m at mid-step.
    cells = np.array([[[0, 0], [0, 1]], [[0, 1], [1, 1]]])
    transform = GridToWorld(cell_size_m=0.5)
    make_plan(cells, transform, max_speed_mps=1.0, safety_distance_m=0.35)
    with pytest.raises(UnsafePlanError, match=r"drones 0 and 1 come 0\.354 m apart during step 0"):
        make_plan(cells, transform, max_speed_mps=1.0, safety_distance_m=0.36)


def test_swap_is_rejected_with_time_window():
    cells = np.array([[[2, 2], [5, 5], [2, 3]], [[2, 2], [5, 5], [2, 3]], [[2, 2], [5, 5], [2, 3]]])
    cells[2, 0], cells[2, 2] = (2, 3), (2, 2)  # drones 0 and 2 swap in step 1
    with pytest.raises(
        UnsafePlanError, match=r"drones 0 and 2 come 0\.000 m apart during step 1 \(t = 1\.00"
    ):
        make_plan(cells, GridToWorld(cell_size_m=0.5), max_speed_mps=0.5, safety_distance_m=0.2)


@st.composite
def grid_walks(draw):
    drones = draw(st.integers(2, 5))
    steps = draw(st.integers(1, 6))
    start = draw(arrays(np.int64, (drones, 2), elements=st.integers(0, 4)))
    moves = draw(arrays(np.int64, (steps, drones), elements=st.integers(0, 4)))
    delta = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])[moves]  # (S, N, 2)
    return np.concatenate([start[None], start[None] + np.cumsum(delta, axis=0)])


@given(grid_walks(), st.floats(0.05, 0.6))
def test_separation_check_agrees_with_brute_force(cells, safety):
    transform = GridToWorld(cell_size_m=0.5, origin_m=(1.0, -2.0), altitude_m=0.8)
    positions = transform.cell_centres(cells)
    first, second = np.triu_indices(cells.shape[1], k=1)
    pairs = np.stack([first, second], axis=-1)
    sampled = min(
        sampled_min_distance(positions[k][pairs], positions[k + 1][pairs]).min()
        for k in range(len(cells) - 1)
    )
    try:
        check_separation(positions, safety, 1.0)
    except UnsafePlanError:
        assert sampled < safety + 0.5 / (SAMPLES - 1) * 2
    else:
        assert sampled >= safety - 1e-9


def test_transform_puts_cell_centres_in_metres():
    transform = GridToWorld(cell_size_m=0.4, origin_m=(1.0, 2.0), altitude_m=1.5)
    np.testing.assert_allclose(transform.cell_centres(np.array([3, 1])), [1.6, 0.6, 1.5])


def test_plan_rejects_jumps_and_speeding():
    with pytest.raises(ExportError, match=r"drone 1 jumps 2 cells at step 0 \(\[0, 0\] -> \[1, 1\]\)"):
        make_plan(
            np.array([[[5, 5], [0, 0]], [[5, 5], [1, 1]]]),
            GridToWorld(),
            max_speed_mps=1.0,
            safety_distance_m=0.1,
        )
    with pytest.raises(ExportError, match=r"step duration 0.2 s is too short: one 0.5 m cell at 1.0 m/s"):
        make_plan(
            np.zeros((2, 1, 2), np.int64),
            GridToWorld(),
            max_speed_mps=1.0,
            step_duration_s=0.2,
            safety_distance_m=0.1,
        )


def evaluate_pieces(text: str, t: float) -> np.ndarray:
    """Position of a Crazyswarm2 polynomial trajectory CSV at time t."""
    rows = list(csv.reader(io.StringIO(text)))[1:]
    for row in rows:
        duration, values = float(row[0]), np.array(row[1:], dtype=float).reshape(4, 8)
        if t <= duration + 1e-12:
            return values[:3] @ (t ** np.arange(8))
        t -= duration
    raise AssertionError("time past the end of the trajectory")


@given(grid_walks(), st.floats(0.0, 1.0))
def test_crazyswarm_pieces_follow_the_plan(cells, fraction):
    plan = make_plan(
        cells, GridToWorld(cell_size_m=0.5), max_speed_mps=0.5, step_duration_s=1.5, safety_distance_m=0.0
    )
    t = fraction * plan.num_steps * plan.step_duration_s
    step = min(int(t // plan.step_duration_s), plan.num_steps - 1)
    u = t / plan.step_duration_s - step
    for drone in range(plan.num_drones):
        expected = plan.positions_m[step, drone] + u * (
            plan.positions_m[step + 1, drone] - plan.positions_m[step, drone]
        )
        np.testing.assert_allclose(evaluate_pieces(crazyswarm_csv(plan, drone), t), expected, atol=1e-6)


def test_cflib_script_sends_the_plan_in_lockstep(tmp_path, monkeypatch):
    cells = np.array([[[0, 0], [3, 3]], [[0, 1], [3, 3]], [[1, 1], [2, 3]]])
    plan = make_plan(cells, GridToWorld(cell_size_m=0.5), max_speed_mps=1.0, safety_distance_m=0.3)
    for name, text in plan_files(plan).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    calls: list[tuple] = []

    class Commander:
        def __init__(self, uri):
            self.uri = uri

        def __getattr__(self, name):
            return lambda *args, **kwargs: calls.append((self.uri, name, args, kwargs))

    class Swarm:
        def __init__(self, uris, factory):
            self.links = {
                uri: types.SimpleNamespace(cf=types.SimpleNamespace(high_level_commander=Commander(uri)))
                for uri in uris
            }

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def reset_estimators(self):
            pass

        def parallel_safe(self, func, args_dict=None):
            for uri, link in self.links.items():
                func(link, *(args_dict or {}).get(uri, []))

    cflib = types.ModuleType("cflib")
    crtp = types.ModuleType("cflib.crtp")
    crtp.init_drivers = lambda: None
    swarm = types.ModuleType("cflib.crazyflie.swarm")
    swarm.Swarm, swarm.CachedCfFactory = Swarm, lambda rw_cache: None
    cflib.crtp = crtp
    for name, module in {
        "cflib": cflib,
        "cflib.crtp": crtp,
        "cflib.crazyflie": types.ModuleType("x"),
        "cflib.crazyflie.swarm": swarm,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr("time.sleep", lambda s: None)
    monkeypatch.setattr(sys, "argv", ["fly_cflib.py", "radio://a", "radio://b"])
    runpy.run_path(str(tmp_path / "fly_cflib.py"), run_name="__main__")

    linear = [(uri, args) for uri, name, args, kwargs in calls if name == "go_to" and kwargs.get("linear")]
    for drone, uri in enumerate(["radio://a", "radio://b"]):
        sent = np.array([args[:3] for u, args in linear if u == uri])
        np.testing.assert_allclose(sent, plan.positions_m[1:, drone], atol=1e-6)
        assert all(args[4] == plan.step_duration_s for u, args in linear if u == uri)
