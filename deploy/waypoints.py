"""Waypoint plans for drones from grid trajectories, and their continuous-time safety checks.

A plan is lockstep: at step k every drone is at the centre of its cell at time k*T. It is flown two ways,
and both are checked: straight lines at constant speed between the cell centres (the high-level commander's
`go_to(..., linear=True)`, fly_cflib.py), and smooth 7th-order polynomial pieces continuous in position,
velocity and acceleration that stop where the grid plan waits (deploy.trajectory; Crazyswarm2 CSVs and
fly_hlc.py). T is long enough for --max-speed on both and for --max-accel on the pieces. Drones that finished
their task hover where they are; they still occupy airspace, so they take part in the safety checks.

Grid to world: the grid origin (row 0, column 0 corner) sits at `origin_m`; columns run along +x, rows along
-y (so the map seen from above is not mirrored), every drone flies at `altitude_m`:
    x = origin_x + (col + 0.5) * cell_size,   y = origin_y - (row + 0.5) * cell_size,   z = altitude.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from deploy import trajectory
from deploy.errors import ExportError, UnsafePlanError

# The Crazyflie high-level commander stores at most 31 raw polynomial pieces (4096 B / 132 B per piece).
TRAJECTORY_PIECES_LIMIT = 31
_POLY_DEGREE = 8
# Crazyflie 2.x defaults (crazyflie-firmware platform_defaults_cf2.h): the PID position controller caps
# horizontal speed at 1.0 m/s (PID_POS_VEL_X_MAX) and tilt at 20 degrees (PID_VEL_ROLL_MAX), which allows
# g * tan(20 deg) = 3.57 m/s^2. The plan's defaults stay well inside both.
DEFAULT_MAX_SPEED_MPS = 0.5
DEFAULT_MAX_ACCEL_MPS2 = 2.0


@dataclass(frozen=True)
class GridToWorld:
    """Maps grid cells (row, col) to world positions in metres."""

    cell_size_m: float = 0.5
    origin_m: tuple[float, float] = (0.0, 0.0)
    altitude_m: float = 1.0

    def __post_init__(self) -> None:
        if not self.cell_size_m > 0:
            raise ExportError(f"cell size must be > 0 m, got {self.cell_size_m}")
        if not self.altitude_m > 0:
            raise ExportError(f"altitude must be > 0 m, got {self.altitude_m}")

    def cell_centres(self, cells: np.ndarray) -> np.ndarray:
        """(..., 2) int (row, col) -> (..., 3) float64 (x, y, z) in metres."""
        cells = np.asarray(cells)
        x = self.origin_m[0] + (cells[..., 1] + 0.5) * self.cell_size_m
        y = self.origin_m[1] - (cells[..., 0] + 0.5) * self.cell_size_m
        z = np.full(x.shape, self.altitude_m)
        return np.stack([x, y, z], axis=-1)

    def to_dict(self) -> dict:
        return {**asdict(self), "origin_m": list(self.origin_m), "formula": _FORMULA}


_FORMULA = "x = origin_x + (col + 0.5) * cell_size; y = origin_y - (row + 0.5) * cell_size; z = altitude"


@dataclass(frozen=True)
class WaypointPlan:
    """Per-drone cell-centre waypoints with lockstep times."""

    positions_m: np.ndarray  # (S+1, N, 3) float64: where each drone is at the start of step k (k = 0..S)
    cells: np.ndarray  # (S+1, N, 2) int64 (row, col)
    step_duration_s: float
    transform: GridToWorld
    pieces: np.ndarray  # (N, S, 3, 8) float64: smooth pieces, coefficients in seconds from each step's start
    checks: dict  # what make_plan measured: peaks, closest approaches, tracking error

    @property
    def num_drones(self) -> int:
        return self.positions_m.shape[1]

    @property
    def num_steps(self) -> int:
        return self.positions_m.shape[0] - 1

    @property
    def times_s(self) -> np.ndarray:
        """(S+1,) float64 time at which every drone reaches positions_m[k]."""
        return np.arange(self.num_steps + 1) * self.step_duration_s


def make_plan(
    cells: np.ndarray,
    transform: GridToWorld,
    *,
    max_speed_mps: float = DEFAULT_MAX_SPEED_MPS,
    max_accel_mps2: float = DEFAULT_MAX_ACCEL_MPS2,
    step_duration_s: float | None = None,
    safety_distance_m: float,
    tracker: trajectory.Tracker = trajectory.TRACKER,
) -> WaypointPlan:
    """Build a plan from grid positions (S+1, N, 2) (row, col) and check it.

    The step duration defaults to the shortest (rounded up to 0.01 s) that keeps the straight flight within
    max_speed and the smooth pieces within max_speed and max_accel. Raises ExportError for moves longer than
    one cell or a step duration too short, UnsafePlanError when two drones come closer than the safety
    distance on the straight lines, on the smooth pieces, or when the pieces are tracked by `tracker`.
    """
    cells = np.asarray(cells)
    if cells.ndim != 3 or cells.shape[-1] != 2 or cells.shape[0] < 1 or cells.shape[1] < 1:
        raise ExportError(f"positions must have shape (steps+1, drones, 2) (row, col), got {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        raise ExportError(f"positions must be integer grid cells, got dtype {cells.dtype}")
    for name, value, unit in (
        ("max speed", max_speed_mps, "m/s"),
        ("max acceleration", max_accel_mps2, "m/s^2"),
    ):
        if not (value > 0 and math.isfinite(value)):
            raise ExportError(f"{name} must be a finite number > 0 {unit}, got {value}")
    _check_unit_moves(cells)
    positions = transform.cell_centres(cells)
    unit = trajectory.unit_pieces(positions)
    linear = transform.cell_size_m / max_speed_mps
    smooth = trajectory.minimum_step_duration(unit, max_speed_mps, max_accel_mps2) if unit.size else 0.0
    shortest = max(linear, smooth)
    if step_duration_s is None:
        step_duration_s = math.ceil(shortest * 100 - 1e-9) / 100
    if not step_duration_s >= shortest * (1 - 1e-9):
        raise ExportError(
            f"step duration {step_duration_s} s is too short: the plan needs {shortest:.3f} s per step "
            f"(straight {transform.cell_size_m} m cells at {max_speed_mps} m/s: {linear:.3f} s; smooth "
            f"pieces within {max_speed_mps} m/s and {max_accel_mps2} m/s^2: {smooth:.3f} s)"
        )
    check_separation(positions, safety_distance_m, step_duration_s)
    pieces = trajectory.scaled(unit, step_duration_s)
    checks = _check_smooth(pieces, step_duration_s, max_accel_mps2, safety_distance_m, tracker)
    speed, accel = trajectory.unit_peaks(unit) if unit.size else (0.0, 0.0)
    checks |= {
        "peak_speed_mps": speed / step_duration_s,
        "peak_accel_mps2": accel / step_duration_s**2,
        "max_speed_mps": max_speed_mps,
        "max_accel_mps2": max_accel_mps2,
    }
    return WaypointPlan(positions, cells.astype(np.int64), float(step_duration_s), transform, pieces, checks)


def _check_smooth(
    pieces: np.ndarray,
    step_duration_s: float,
    max_accel_mps2: float,
    safety_distance_m: float,
    tracker: trajectory.Tracker,
) -> dict:
    """Separation on the smooth pieces in continuous time and when tracked; UnsafePlanError if too close."""
    if not pieces.shape[1]:
        return {}
    smooth = trajectory.closest_approach(pieces, step_duration_s)
    tracked, error = trajectory.tracked_approach(pieces, step_duration_s, max_accel_mps2, tracker)
    for approach, how in ((smooth, "on their smooth trajectories"), (tracked, "when tracked")):
        if approach is not None and approach.distance_m < safety_distance_m:
            how += (
                f" (PD controller kp {tracker.kp}, kd {tracker.kd}, |a| <= {max_accel_mps2} m/s^2)"
                if approach is tracked
                else ""
            )
            raise UnsafePlanError(
                f"drones {approach.first} and {approach.second} come {approach.distance_m:.3f} m apart {how} "
                f"at t = {approach.time_s:.2f} s; the safety distance is {safety_distance_m} m"
            )
    return {
        "closest_smooth_m": None if smooth is None else smooth.distance_m,
        "closest_tracked_m": None if tracked is None else tracked.distance_m,
        "tracking_error_max_m": error,
        "tracker": {
            "kp": tracker.kp,
            "kd": tracker.kd,
            "dt_s": tracker.dt_s,
            "accel_limit_mps2": max_accel_mps2,
        },
    }


def _check_unit_moves(cells: np.ndarray) -> None:
    jumps = np.abs(np.diff(cells.astype(np.int64), axis=0)).sum(axis=-1)  # (S, N) cells moved per step
    if jumps.size and jumps.max() > 1:
        step, drone = np.argwhere(jumps > 1)[0]
        raise ExportError(
            f"drone {drone} jumps {jumps[step, drone]} cells at step {step} "
            f"({cells[step, drone].tolist()} -> {cells[step + 1, drone].tolist()}); "
            "a plan moves at most one cell per step"
        )


def closest_approach(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Smallest distance between pairs of points moving linearly over one step.

    start, end: (..., P, 2, 3) float64 positions of the two points of each pair at the step's start and end.
    Returns (..., P) float64: min over u in [0, 1] of |d0 + u (d1 - d0)|, d = position difference.
    """
    d0 = start[..., 0, :] - start[..., 1, :]  # (..., P, 3)
    d1 = end[..., 0, :] - end[..., 1, :]
    velocity = d1 - d0
    speed_sq = np.einsum("...i,...i->...", velocity, velocity)
    # Minimizer of the quadratic |d0 + u v|^2, clamped to the step; a pair with equal velocities keeps u = 0.
    u = np.clip(-np.einsum("...i,...i->...", d0, velocity) / np.where(speed_sq > 0, speed_sq, 1.0), 0.0, 1.0)
    closest = d0 + u[..., None] * velocity
    return np.sqrt(np.einsum("...i,...i->...", closest, closest))


def check_separation(positions_m: np.ndarray, safety_distance_m: float, step_duration_s: float) -> None:
    """Raise UnsafePlanError naming the first step and pair that come closer than the safety distance.

    positions_m: (S+1, N, 3) float64 lockstep waypoints; motion between them is straight and uniform.
    """
    num_drones = positions_m.shape[1]
    if num_drones < 2:
        return
    first, second = np.triu_indices(num_drones, k=1)
    pairs = np.stack([first, second], axis=-1)  # (P, 2)
    for step in range(max(positions_m.shape[0] - 1, 1)):
        start = positions_m[step][pairs]  # (P, 2, 3)
        end = positions_m[min(step + 1, positions_m.shape[0] - 1)][pairs]
        distance = closest_approach(start, end)
        if distance.min() < safety_distance_m:
            worst = int(np.argmin(distance))
            raise UnsafePlanError(
                f"drones {first[worst]} and {second[worst]} come {distance[worst]:.3f} m apart during step "
                f"{step} (t = {step * step_duration_s:.2f}..{(step + 1) * step_duration_s:.2f} s); "
                f"the safety distance is {safety_distance_m} m"
            )


def waypoints_csv(plan: WaypointPlan) -> str:
    """One row per drone and step: drone, step, t_s, row, col, x_m, y_m, z_m."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["drone", "step", "t_s", "row", "col", "x_m", "y_m", "z_m"])
    times = plan.times_s
    for drone in range(plan.num_drones):
        for step in range(plan.num_steps + 1):
            row, col = plan.cells[step, drone]
            x, y, z = plan.positions_m[step, drone]
            writer.writerow([drone, step, f"{times[step]:.6g}", row, col, f"{x:.6g}", f"{y:.6g}", f"{z:.6g}"])
    return out.getvalue()


def crazyswarm_csv(plan: WaypointPlan, drone: int) -> str:
    """Crazyswarm2 trajectory CSV (duration, x^0..x^7, y^0..y^7, z^0..z^7, yaw^0..yaw^7) of the smooth pieces,
    consecutive pieces that continue one polynomial merged."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["duration"] + [f"{axis}^{k}" for axis in ("x", "y", "z", "yaw") for k in range(_POLY_DEGREE)]
    writer.writerow(header)
    for duration, coefficients in trajectory.merged_pieces(plan.pieces[drone], plan.step_duration_s):
        writer.writerow(
            [f"{duration:.9g}", *(f"{c:.9g}" for c in coefficients.ravel()), *["0"] * _POLY_DEGREE]
        )
    return out.getvalue()


def script(name: str) -> str:
    """The text of a flight script shipped in deploy/scripts/ (copied into an export unchanged)."""
    return (resources.files("deploy") / "scripts" / name).read_text(encoding="utf-8")


def plan_files(plan: WaypointPlan) -> dict[str, str]:
    """Every file of a plan by path: waypoints.csv, plan.json, the flight scripts, crazyswarm2/cf<i>.csv."""
    files = {
        "waypoints.csv": waypoints_csv(plan),
        "plan.json": json.dumps({"step_duration_s": plan.step_duration_s, "num_drones": plan.num_drones})
        + "\n",
        "fly_cflib.py": script("fly_cflib.py"),
        "fly_hlc.py": script("fly_hlc.py"),
    }
    for drone in range(plan.num_drones):
        files[f"crazyswarm2/cf{drone}.csv"] = crazyswarm_csv(plan, drone)
    return files


def plan_summary(plan: WaypointPlan, safety_distance_m: float) -> dict:
    """Manifest section describing the plan and what its checks measured."""
    pieces = [
        len(trajectory.merged_pieces(plan.pieces[drone], plan.step_duration_s))
        for drone in range(plan.num_drones)
    ]
    return {
        "num_drones": plan.num_drones,
        "num_steps": plan.num_steps,
        "step_duration_s": plan.step_duration_s,
        "straight_speed_mps": plan.transform.cell_size_m / plan.step_duration_s,
        "safety_distance_m": safety_distance_m,
        "grid_to_world": plan.transform.to_dict(),
        "smooth": plan.checks,
        "max_trajectory_pieces": max(pieces),
        "fits_trajectory_memory": max(pieces) <= TRAJECTORY_PIECES_LIMIT,
    }
