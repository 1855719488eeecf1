"""Smooth, flyable trajectories through a lockstep grid plan, and their separation in continuous time.

Every drone flies one 7th-order polynomial piece per grid step (Crazyswarm2's trajectory format: 8
coefficients per axis). A piece joins the centres of the step's two cells with position, velocity,
acceleration and jerk given at both ends, so the whole trajectory is continuous in all four. Where the drone
waits (it stays in its cell the step before or after) or starts or ends, all derivatives are zero: it stops
at the cell centre. Where it passes through, the velocity is the central difference of its neighbouring
cells, (p[k+1] - p[k-1]) / 2T, the acceleration the second difference, (p[k+1] - 2 p[k] + p[k-1]) / T^2, and
the jerk zero: a run of moves along a line is flown at constant speed.

Velocities scale as 1/T and accelerations as 1/T^2 with the step duration T, so the shortest T that keeps the
peak speed and acceleration within limits follows from the pieces of T = 1. Separation is checked exactly on
the polynomials (the minimum of the squared pairwise distance, a degree-14 polynomial per step, at the roots
of its derivative), and on what drones would fly: double integrators following the pieces under a PD
controller whose acceleration is limited (the tracking lag of a position controller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import polynomial as P

DEGREE = 7
_U_SAMPLES = 17  # per step, to find the pairs and steps worth an exact minimum


@dataclass(frozen=True)
class Tracker:
    """A drone as a double integrator under PD position control with limited acceleration:
    a = clip(kp (p_ref - p) + kd (v_ref - v), max_accel), no acceleration feedforward (so it lags)."""

    kp: float = 16.0  # 1/s^2: natural frequency 4 rad/s
    kd: float = 5.6  # 1/s: damping ratio 0.7
    dt_s: float = 0.005


TRACKER = Tracker()


def _boundary(track: np.ndarray) -> np.ndarray:
    """(S+1, 4, 3) position and the first three derivatives at every waypoint of one drone, for T = 1."""
    steps = len(track) - 1
    state = np.zeros((steps + 1, 4, 3))
    state[:, 0] = track
    for k in range(1, steps):
        before, after = track[k] - track[k - 1], track[k + 1] - track[k]
        if np.any(before) and np.any(after):  # moving through: neither the step before nor after waits
            state[k, 1] = (track[k + 1] - track[k - 1]) / 2.0
            state[k, 2] = after - before
    return state


def _hermite_inverse() -> np.ndarray:
    """(8, 8) matrix mapping [p, v, a, j at u=0; p, v, a, j at u=1] to the coefficients on [0, 1]."""
    rows = []
    for u in (0.0, 1.0):
        for order in range(4):
            row = [
                math.factorial(n) / math.factorial(n - order) * u ** (n - order) if n >= order else 0.0
                for n in range(DEGREE + 1)
            ]
            rows.append(row)
    return np.linalg.inv(np.array(rows))


_HERMITE = _hermite_inverse()


def unit_pieces(positions_m: np.ndarray) -> np.ndarray:
    """Pieces for T = 1: positions (S+1, N, 3) -> coefficients (N, S, 3, 8) in u = t / T, ascending powers."""
    steps, drones = positions_m.shape[0] - 1, positions_m.shape[1]
    pieces = np.zeros((drones, steps, 3, DEGREE + 1))
    for drone in range(drones):
        state = _boundary(positions_m[:, drone])  # (S+1, 4, 3)
        ends = np.concatenate([state[:-1], state[1:]], axis=1)  # (S, 8, 3)
        pieces[drone] = np.einsum("cb,sba->sac", _HERMITE, ends)
    return pieces


def scaled(unit: np.ndarray, step_duration_s: float) -> np.ndarray:
    """Unit pieces (..., 8) in u -> coefficients in seconds from the piece's start."""
    return unit / step_duration_s ** np.arange(DEGREE + 1)


def _peak_norm(polys: np.ndarray) -> float:
    """max over u in [0, 1] of |f(u)| for vector polynomials polys (M, 3, K), exactly (roots of f . f')."""
    best = 0.0
    for poly in np.unique(np.round(polys, 12), axis=0):
        square = sum(np.convolve(poly[a], poly[a]) for a in range(3))
        candidates = [0.0, 1.0]
        slope = P.polytrim(P.polyder(square), 1e-12)
        if slope.size > 1:
            candidates += [r.real for r in P.polyroots(slope) if abs(r.imag) < 1e-9 and 0 < r.real < 1]
        best = max(best, float(np.linalg.norm(P.polyval(np.array(candidates), poly.T), axis=0).max()))
    return best


def unit_peaks(unit: np.ndarray) -> tuple[float, float]:
    """(peak speed, peak acceleration) of unit pieces (N, S, 3, 8), in metres per step and per step^2."""
    flat = unit.reshape(-1, 3, DEGREE + 1)
    velocity = P.polyder(flat, axis=-1)
    return _peak_norm(velocity), _peak_norm(P.polyder(velocity, axis=-1))


def minimum_step_duration(unit: np.ndarray, max_speed_mps: float, max_accel_mps2: float) -> float:
    """The shortest T whose pieces keep the peak speed <= max_speed and acceleration <= max_accel."""
    speed, accel = unit_peaks(unit)
    return max(speed / max_speed_mps, math.sqrt(accel / max_accel_mps2))


def positions_at(
    pieces: np.ndarray, step_duration_s: float, times_s: np.ndarray, order: int = 0
) -> np.ndarray:
    """The `order`-th derivative of every drone's trajectory at times_s (K,): (K, N, 3); before 0 and after
    the last step the drone holds its end points (derivatives zero)."""
    steps = pieces.shape[1]
    step = np.clip((times_s // step_duration_s).astype(int), 0, steps - 1)
    t = np.clip(times_s - step * step_duration_s, 0.0, step_duration_s)
    coefficients = pieces[:, step]  # (N, K, 3, 8)
    for _ in range(order):
        coefficients = P.polyder(coefficients, axis=-1)
    values = np.einsum("nkad,kd->kna", coefficients, t[:, None] ** np.arange(coefficients.shape[-1]))
    if order:
        values[(times_s < 0) | (times_s > steps * step_duration_s)] = 0.0
    return values


@dataclass(frozen=True)
class Approach:
    """The closest two drones come: the pair, when, how close."""

    first: int
    second: int
    time_s: float
    distance_m: float


def closest_approach(pieces: np.ndarray, step_duration_s: float) -> Approach | None:
    """The exact minimum pairwise distance of the polynomial trajectories (N, S, 3, 8) in seconds; None for
    fewer than two drones."""
    drones, steps = pieces.shape[:2]
    if drones < 2:
        return None
    first, second = np.triu_indices(drones, k=1)
    u = np.linspace(0.0, 1.0, _U_SAMPLES)
    times = (np.arange(steps)[:, None] + u[None]) * step_duration_s  # (S, U)
    sampled = positions_at(pieces, step_duration_s, times.ravel()).reshape(steps, _U_SAMPLES, drones, 3)
    gaps = np.linalg.norm(sampled[:, :, first] - sampled[:, :, second], axis=-1)  # (S, U, pairs)
    speed = _peak_norm(P.polyder(scaled_to_unit(pieces, step_duration_s).reshape(-1, 3, DEGREE + 1), axis=-1))
    slack = 2 * speed / (_U_SAMPLES - 1) / 2  # the most a pair's distance moves between two samples
    best = float(gaps.min())
    result = None
    for step, pair in zip(*np.nonzero(gaps.min(axis=1) - slack <= best), strict=True):
        difference = pieces[first[pair], step] - pieces[second[pair], step]  # (3, 8) in seconds
        distance, t = _min_norm(difference, step_duration_s)
        if result is None or distance < result.distance_m:
            result = Approach(int(first[pair]), int(second[pair]), step * step_duration_s + t, distance)
    return result


def scaled_to_unit(pieces: np.ndarray, step_duration_s: float) -> np.ndarray:
    """Coefficients in seconds -> in u = t / T (the inverse of `scaled`)."""
    return pieces * step_duration_s ** np.arange(DEGREE + 1)


def _min_norm(poly: np.ndarray, duration: float) -> tuple[float, float]:
    """(min over t in [0, duration] of |poly(t)|, the t) for a vector polynomial (3, 8)."""
    square = sum(np.convolve(poly[a], poly[a]) for a in range(3))
    candidates = [0.0, duration]
    slope = P.polytrim(P.polyder(square), 1e-15)
    if slope.size > 1 and np.any(slope):
        candidates += [r.real for r in P.polyroots(slope) if abs(r.imag) < 1e-7 and 0 < r.real < duration]
    # the norm of the evaluated vector: the square's own value near 0 loses half its digits to the sqrt
    norms = np.linalg.norm(P.polyval(np.array(candidates), poly.T), axis=0)
    best = int(np.argmin(norms))
    return float(norms[best]), float(candidates[best])


def tracked_approach(
    pieces: np.ndarray, step_duration_s: float, max_accel_mps2: float, tracker: Tracker = TRACKER
) -> tuple[Approach | None, float]:
    """Simulate every drone following its pieces under `tracker` with |a| <= max_accel (from rest at its
    start, until a settling second after the end); returns the closest approach of the simulated drones
    (sampled every dt) and the largest tracking error in metres."""
    drones, steps = pieces.shape[:2]
    times = np.arange(0.0, steps * step_duration_s + 1.0, tracker.dt_s)
    reference = positions_at(pieces, step_duration_s, times)  # (K, N, 3)
    reference_velocity = positions_at(pieces, step_duration_s, times, order=1)
    position, velocity = reference[0].copy(), np.zeros((drones, 3))
    flown = np.empty_like(reference)
    for k in range(len(times)):
        flown[k] = position
        command = tracker.kp * (reference[k] - position) + tracker.kd * (reference_velocity[k] - velocity)
        norm = np.linalg.norm(command, axis=1, keepdims=True)
        command *= np.minimum(1.0, max_accel_mps2 / np.maximum(norm, 1e-12))
        velocity += command * tracker.dt_s
        position += velocity * tracker.dt_s
    error = float(np.linalg.norm(flown - reference, axis=-1).max())
    if drones < 2:
        return None, error
    first, second = np.triu_indices(drones, k=1)
    closest = None
    for start in range(0, len(times), 1024):  # (1024, pairs) distances at a time
        gaps = np.linalg.norm(
            flown[start : start + 1024, first] - flown[start : start + 1024, second], axis=-1
        )
        k, pair = np.unravel_index(int(np.argmin(gaps)), gaps.shape)
        if closest is None or gaps[k, pair] < closest.distance_m:
            closest = Approach(
                int(first[pair]), int(second[pair]), float(times[start + k]), float(gaps[k, pair])
            )
    return closest, error


def _shifted(poly: np.ndarray, shift: float) -> np.ndarray:
    """Coefficients of p(t + shift) for p (..., 8) in ascending powers (Taylor shift)."""
    out = np.zeros_like(poly)
    for n in range(poly.shape[-1]):
        for k in range(n + 1):
            out[..., k] += poly[..., n] * math.comb(n, k) * shift ** (n - k)
    return out


def merged_pieces(pieces: np.ndarray, step_duration_s: float) -> list[tuple[float, np.ndarray]]:
    """One drone's pieces (S, 3, 8) in seconds as (duration, coefficients (3, 8)), a piece merged into the one
    before it when it continues the same polynomial (a wait, or a straight run at constant speed)."""
    merged: list[tuple[float, np.ndarray]] = []
    for piece in pieces:
        if merged:
            duration, previous = merged[-1]
            if np.allclose(_shifted(previous, duration), piece, rtol=0.0, atol=1e-9):
                merged[-1] = (duration + step_duration_s, previous)
                continue
        merged.append((step_duration_s, piece))
    return merged
