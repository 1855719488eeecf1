"""The `path` (or `detour`) observation channel from its two sources side by side: cached full-map distance
fields and per-agent distance windows (sim/channels.py), on the same recorded states, with the channel they
write compared bit for bit.

Usage: .venv/bin/python benchmarks/bench_path_channel.py [--channel detour]

States: PIBT plays a lifelong random map (density 0.2, soft collisions, radius 5, the shipped lifelong
policy's channels) and every step's positions and goals are recorded; each source then writes the
observation's extra channels for the recorded steps: 20 x 20 maps (the POGEMA benchmark's 01-random size)
with 8-64 agents in one environment, and 32 agents in each of 64 environments. Per cell: the first call
(allocation, the first searches), then the least process CPU time per step over 7 interleaved repetitions,
and the ratio windows / fields. `ExtraChannels` picks fields exactly when the cache keeps every cell's field
(these maps); at scale it cannot (benchmarks/swarm_table.py times the windows there).
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one thread, before numba is imported

import argparse
import platform
import time

import numpy as np

from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim import GridEnv
from sim.baselines import make_baseline
from sim.channels import ExtraChannels
from sim.distance import DistanceCache

CHANNELS = ("obstacles", "agents", "goal", "path", "other_goals")
"""The shipped lifelong policy's channels; `--channel detour` puts `detour` in place of `path`."""
REPEATS = 7
CASES = ((20, 8, 1, 256), (20, 16, 1, 256), (20, 32, 1, 256), (20, 64, 1, 256), (20, 32, 64, 64))
"""(map side, agents, environments, recorded steps)"""

States = list[tuple[np.ndarray, np.ndarray]]


def record(side: int, agents: int, envs: int, steps: int) -> tuple[np.ndarray, States]:
    """The maps (E, H, W) and `steps` (positions, goals) pairs of a PIBT episode, lifelong."""
    spec = Scenario(
        map=MapSpec(width=side, height=side, density=0.2), agents=AgentsSpec(count=agents),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=10**6),
        observation=ObservationSpec(radius=5, channels=CHANNELS),
    )  # fmt: skip
    env = GridEnv(spec, envs, seed=0)
    env.reset()
    planner = make_baseline("pibt", env, seed=0)
    states = []
    for _ in range(steps):
        states.append((env.positions.copy(), env.goals.copy()))
        env.step(planner())
    return env.obstacles.copy(), states


def fields(obstacles: np.ndarray, names: tuple[str, ...]) -> ExtraChannels:
    """The channels as an env builds them: on these maps the route channels read the cached fields."""
    return ExtraChannels(names, DistanceCache(obstacles))


def windows(obstacles: np.ndarray, names: tuple[str, ...]) -> ExtraChannels:
    """The channels over a one-field cache: the route channels read windows."""
    return ExtraChannels(names, DistanceCache(obstacles, capacity=1))


def time_source(
    make, names: tuple[str, ...], obstacles: np.ndarray, states: States, steps: int
) -> tuple[float, float, list]:
    """First call (s), CPU seconds per later step, and the channel-3 planes written, over `steps` states."""
    obs = np.zeros((*states[0][0].shape[:2], len(names), 11, 11), dtype=np.float32)
    active = np.ones(states[0][0].shape[:2], dtype=bool)
    channels = make(obstacles, names)
    start = time.perf_counter()
    channels.write(obs, *states[0], active)
    first = time.perf_counter() - start
    planes = [obs[:, :, 3].copy()]
    start_cpu = time.process_time()
    for positions, goals in states[1:steps]:
        channels.write(obs, positions, goals, active)
        planes.append(obs[:, :, 3].copy())
    return first, (time.process_time() - start_cpu) / max(1, steps - 1), planes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channel", choices=("path", "detour"), default="path")
    names = tuple(parser.parse_args().channel if name == "path" else name for name in CHANNELS)
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    print(f"{platform.machine()} {os.cpu_count()} cores, load average {load}, {when}, channels {names}")
    obstacles, states = record(12, 4, 1, 3)  # compile both sources first
    for make in (fields, windows):
        time_source(make, names, obstacles, states, 3)
    print("\n| map | agents | envs | steps | source picked | first call ms fields / windows "
          "| CPU ms/step fields | windows | windows / fields | identical |")  # fmt: skip
    print("|---" * 10 + "|")
    for side, agents, envs, steps in CASES:
        obstacles, states = record(side, agents, envs, steps)
        runs = [(time_source(fields, names, obstacles, states, steps),
                 time_source(windows, names, obstacles, states, steps)) for _ in range(REPEATS)]  # fmt: skip
        by_fields = min((run[0] for run in runs), key=lambda run: run[1])
        by_windows = min((run[1] for run in runs), key=lambda run: run[1])
        same = all(np.array_equal(a, b) for a, b in zip(by_fields[2], by_windows[2], strict=True))
        assert not fields(obstacles, names).uses_windows and windows(obstacles, names).uses_windows
        print(f"| {side}x{side} | {agents} | {envs} | {steps - 1} | fields | {by_fields[0] * 1e3:.2f} / "
              f"{by_windows[0] * 1e3:.2f} | {by_fields[1] * 1e3:.3f} | {by_windows[1] * 1e3:.3f} | "
              f"{by_windows[1] / by_fields[1]:.2f} | {same} |", flush=True)  # fmt: skip
    print(f"\nload average after: {' '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
