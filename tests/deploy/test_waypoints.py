"""Waypoint plans: the continuous-time separation check and the flight files."""

from __future__ import annotations

import csv
import io
import math
import runpy
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
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
        UnsafePlanError, match=r"drones 0 and 2 come 0\.000 m apart during step 1 \(t = 2\.50\.\.5\.00 s\)"
    ):
        make_plan(cells, GridToWorld(cell_size_m=0.5), step_duration_s=2.5, safety_distance_m=0.2)


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
    one_move = np.array([[[0, 0]], [[0, 1]]])  # rest to rest in one step: peak speed 35/16 of the mean
    with pytest.raises(
        ExportError,
        match=r"step duration 0.5 s is too short: the plan needs 1\.371 s per step \(straight 0.5 m cells at "
        r"1.0 m/s: 0\.500 s; smooth pieces within 1.0 m/s and 2.0 m/s\^2: 1\.371 s\)",
    ):
        make_plan(one_move, GridToWorld(), max_speed_mps=1.0, step_duration_s=0.5, safety_distance_m=0.1)
    plan = make_plan(one_move, GridToWorld(), max_speed_mps=1.0, safety_distance_m=0.1)
    assert plan.step_duration_s == 1.38 and plan.checks["peak_accel_mps2"] <= 2.0


def csv_pieces(text: str) -> list[tuple[float, np.ndarray]]:
    """A Crazyswarm2 trajectory CSV as (duration, coefficients (4, 8)) rows."""
    rows = list(csv.reader(io.StringIO(text)))[1:]
    return [(float(row[0]), np.array(row[1:], dtype=float).reshape(4, 8)) for row in rows]


def evaluate_pieces(text: str, t: float, order: int = 0) -> np.ndarray:
    """The `order`-th derivative of a Crazyswarm2 trajectory CSV's x, y, z at time t."""
    for duration, values in csv_pieces(text):
        if t <= duration + 1e-9:
            powers = np.array([math.perm(k, order) * t ** max(k - order, 0) for k in range(8)])
            return values[:3] @ powers
        t -= duration
    raise AssertionError("time past the end of the trajectory")


@settings(deadline=None, max_examples=25)
@given(grid_walks())
def test_crazyswarm_pieces_pass_every_cell_smoothly_and_stop_where_the_plan_waits(cells):
    plan = make_plan(cells, GridToWorld(cell_size_m=0.5), safety_distance_m=0.0)
    T = plan.step_duration_s
    for drone in range(plan.num_drones):
        text = crazyswarm_csv(plan, drone)
        assert sum(d for d, _ in csv_pieces(text)) == pytest.approx(plan.num_steps * T)
        for step in range(plan.num_steps + 1):
            np.testing.assert_allclose(
                evaluate_pieces(text, step * T), plan.positions_m[step, drone], atol=1e-6
            )
            waits = (
                step in (0, plan.num_steps)
                or np.array_equal(cells[step, drone], cells[max(step - 1, 0), drone])
                or np.array_equal(cells[step, drone], cells[min(step + 1, plan.num_steps), drone])
            )
            for order in (1, 2, 3):
                before = evaluate_pieces(text, step * T - 1e-7, order) if step else None
                after = evaluate_pieces(text, min(step * T + 1e-7, plan.num_steps * T), order)
                if before is not None and step < plan.num_steps:
                    np.testing.assert_allclose(before, after, atol=1e-4 * 10**order)  # continuous
                if waits and order == 1:
                    np.testing.assert_allclose(after, 0.0, atol=1e-5)  # stopped at the cell centre
        # the limits hold on a dense sampling of the trajectory
        times = np.linspace(0, plan.num_steps * T, 40 * plan.num_steps + 1)
        speed = max(np.linalg.norm(evaluate_pieces(text, t, 1)) for t in times)
        accel = max(np.linalg.norm(evaluate_pieces(text, t, 2)) for t in times)
        assert speed <= 0.5 + 1e-6 and accel <= 2.0 + 1e-6


def test_waits_and_straight_runs_are_merged_into_single_pieces():
    # drone 0 waits 3 steps, then runs 4 cells in a straight line through the middle (at constant speed)
    cells = np.array([[[0, 0]]] * 4 + [[[0, k]] for k in range(1, 5)])
    plan = make_plan(cells, GridToWorld(), safety_distance_m=0.0)
    durations = [d for d, _ in csv_pieces(crazyswarm_csv(plan, 0))]
    T = plan.step_duration_s
    # wait (3 steps), start from rest, constant-speed middle (2 steps merged), stop
    assert durations == pytest.approx([3 * T, T, 2 * T, T])


def test_a_plan_safe_on_paper_but_not_when_tracked_is_refused():
    # drone 0 flies up to the cell next to drone 1 and stops: 0.5 m on the smooth trajectories, but a PD
    # tracker without acceleration feedforward overshoots the stop towards drone 1
    cells = np.array([[[0, 0], [0, 3]], [[0, 1], [0, 3]], [[0, 2], [0, 3]], [[0, 2], [0, 3]]])
    plan = make_plan(cells, GridToWorld(cell_size_m=0.5), safety_distance_m=0.4)
    smooth, tracked = plan.checks["closest_smooth_m"], plan.checks["closest_tracked_m"]
    assert smooth == pytest.approx(0.5) and 0.4 < tracked < 0.49
    with pytest.raises(
        UnsafePlanError, match=r"drones 0 and 1 come 0\.4\d\d m apart when tracked .* at t = "
    ):
        make_plan(cells, GridToWorld(cell_size_m=0.5), safety_distance_m=0.49)


class FakeCflib:
    """Just enough of cflib for the flight scripts: a swarm of links whose high-level commanders and
    trajectory memories record every call, and a clock that does not wait."""

    def __init__(self, monkeypatch, memory_bytes: int = 4096) -> None:
        self.calls: list[tuple] = []
        self.uploads: dict[str, list] = {}
        fake = self

        class Commander:
            def __init__(self, uri):
                self.uri = uri

            def __getattr__(self, name):
                return lambda *args, **kwargs: fake.calls.append((self.uri, name, args, kwargs))

        class TrajectoryMemory:
            size = memory_bytes

            def __init__(self, uri):
                self.uri, self.trajectory = uri, []

            def write_data_sync(self):
                fake.uploads[self.uri] = list(self.trajectory)
                return True

        class Swarm:
            def __init__(self, uris, factory):
                self.links = {
                    uri: types.SimpleNamespace(
                        cf=types.SimpleNamespace(
                            high_level_commander=Commander(uri),
                            mem=types.SimpleNamespace(get_mems=lambda kind, uri=uri: [TrajectoryMemory(uri)]),
                        )
                    )
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

        class Poly4D:
            class Poly:
                def __init__(self, values):
                    self.values = values

            def __init__(self, duration, x, y, z, yaw):
                self.duration, self.x, self.y, self.z, self.yaw = duration, x, y, z, yaw

        cflib = types.ModuleType("cflib")
        crtp = types.ModuleType("cflib.crtp")
        crtp.init_drivers = lambda: None
        swarm = types.ModuleType("cflib.crazyflie.swarm")
        swarm.Swarm, swarm.CachedCfFactory = Swarm, lambda rw_cache: None
        mem = types.ModuleType("cflib.crazyflie.mem")
        mem.MemoryElement, mem.Poly4D = types.SimpleNamespace(TYPE_TRAJ=0x11), Poly4D
        cflib.crtp = crtp
        for name, module in {
            "cflib": cflib,
            "cflib.crtp": crtp,
            "cflib.crazyflie": types.ModuleType("cflib.crazyflie"),
            "cflib.crazyflie.swarm": swarm,
            "cflib.crazyflie.mem": mem,
        }.items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr("time.sleep", lambda s: self.calls.append(("clock", "sleep", (s,), {})))

    def run(self, script, monkeypatch, uris: list[str]) -> None:
        """As `python script URI...`: the script's folder first on the import path."""
        monkeypatch.setattr(sys, "argv", [script.name, *uris])
        monkeypatch.syspath_prepend(str(script.parent))
        monkeypatch.delitem(sys.modules, "fly_cflib", raising=False)
        runpy.run_path(str(script), run_name="__main__")


def write_plan(plan, directory) -> None:
    for name, text in plan_files(plan).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)


def test_cflib_script_sends_the_plan_in_lockstep(tmp_path, monkeypatch):
    cells = np.array([[[0, 0], [3, 3]], [[0, 1], [3, 3]], [[1, 1], [2, 3]]])
    plan = make_plan(cells, GridToWorld(cell_size_m=0.5), max_speed_mps=1.0, safety_distance_m=0.3)
    write_plan(plan, tmp_path)
    fake = FakeCflib(monkeypatch)
    fake.run(tmp_path / "fly_cflib.py", monkeypatch, ["radio://a", "radio://b"])
    linear = [
        (uri, args) for uri, name, args, kwargs in fake.calls if name == "go_to" and kwargs.get("linear")
    ]
    for drone, uri in enumerate(["radio://a", "radio://b"]):
        sent = np.array([args[:3] for u, args in linear if u == uri])
        np.testing.assert_allclose(sent, plan.positions_m[1:, drone], atol=1e-6)
        assert all(args[4] == plan.step_duration_s for u, args in linear if u == uri)


def test_hlc_script_uploads_the_smooth_pieces_and_flies_them_together(tmp_path, monkeypatch):
    cells = np.array([[[0, 0], [3, 3]], [[0, 1], [3, 3]], [[1, 1], [2, 3]], [[1, 1], [2, 3]]])
    plan = make_plan(cells, GridToWorld(cell_size_m=0.5), safety_distance_m=0.3)
    write_plan(plan, tmp_path)
    fake = FakeCflib(monkeypatch)
    fake.run(tmp_path / "fly_hlc.py", monkeypatch, ["radio://a", "radio://b"])
    for drone, uri in enumerate(["radio://a", "radio://b"]):
        expected = csv_pieces(crazyswarm_csv(plan, drone))
        uploaded = fake.uploads[uri]
        assert [p.duration for p in uploaded] == [d for d, _ in expected]
        for piece, (_, coefficients) in zip(uploaded, expected, strict=True):
            np.testing.assert_array_equal([piece.x.values, piece.y.values, piece.z.values], coefficients[:3])
        defined = [args for u, name, args, _ in fake.calls if u == uri and name == "define_trajectory"]
        assert defined == [(1, 0, len(expected))]
    names = [name for _, name, _, _ in fake.calls]
    started = names.index("start_trajectory")
    assert names.count("start_trajectory") == 2 and names[started + 1] == "start_trajectory"  # together
    flight = fake.calls[started + 2]
    assert flight[:2] == ("clock", "sleep") and flight[2][0] == pytest.approx(
        plan.num_steps * plan.step_duration_s
    )
    assert names[-1] == "stop"


def test_hlc_script_refuses_a_trajectory_larger_than_the_memory(tmp_path, monkeypatch):
    cells = np.array([[[k % 2, 0]] for k in range(40)])  # 39 moves up and down: 39 pieces
    plan = make_plan(cells, GridToWorld(cell_size_m=0.5), safety_distance_m=0.3)
    write_plan(plan, tmp_path)
    fake = FakeCflib(monkeypatch)
    with pytest.raises(RuntimeError, match=r"39 pieces do not fit 4096 bytes of trajectory memory"):
        fake.run(tmp_path / "fly_hlc.py", monkeypatch, ["radio://a"])
    assert not any(name == "takeoff" for _, name, _, _ in fake.calls)
