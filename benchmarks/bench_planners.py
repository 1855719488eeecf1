"""Speed of the PIBT planner at scale, one thread: swarm-10k (10,000 agents, 512x512) and 100,000 agents on
1024x1024, lifelong (goal changes included), soft collisions.

Usage: NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_planners.py [--quick] [--policies pibt ...]

Per case: the first call (every agent's distance window searched), then `steps` timed env steps, each the
planner's call plus `env.step` (observations included, uint8 as the scale benchmarks use), and the
planner's share alone; the windows' searches and visited cells per step. Every timed stretch is run in
WINDOWS consecutive windows and the fastest counts (the same rule as bench_sim.py on this shared host).
Wall-clock and process CPU time are both reported: on a loaded host the CPU time (one thread, so one core's
worth) is what the code costs, the wall clock what this run got.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import numpy as np

import scenarios
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim import GridEnv
from sim.planners import make_planner

WINDOWS = 3


def scale_scenario(agents: int, side: int) -> Scenario:
    """swarm-10k's setting at another size: random map of density 0.2, lifelong, soft, 256 steps."""
    return Scenario(
        name=f"scale-{agents}",
        map=MapSpec(generator="random", width=side, height=side, density=0.2),
        agents=AgentsSpec(count=agents),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=256),
        observation=ObservationSpec(radius=5),
    )


CASES = (("swarm-10k", 10_000, 512, 40), ("scale-100k", 100_000, 1024, 6))
QUICK_CASES = (("swarm-10k", 10_000, 512, 10),)


def run_case(name: str, agents: int, side: int, steps: int, policy_name: str) -> dict[str, float]:
    scenario = scenarios.load("swarm-10k") if name == "swarm-10k" else scale_scenario(agents, side)
    env = GridEnv(scenario, 1, seed=0, obs_dtype=np.uint8)
    env.reset()
    policy = make_planner(policy_name, env, seed=0)
    start, start_cpu = time.perf_counter(), time.process_time()
    env.step(policy())
    first, first_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    best_loop, best_cpu, best_policy, searches, visited = np.inf, np.inf, np.inf, 0.0, 0.0
    for _ in range(WINDOWS):
        stats_before = policy.windows.stats.copy()
        in_policy = 0.0
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            tick = time.process_time()
            actions = policy()
            in_policy += time.process_time() - tick
            env.step(actions)
        loop, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if cpu < best_cpu:
            best_loop, best_cpu, best_policy = loop, cpu, in_policy
            searches, visited = (policy.windows.stats - stats_before) / steps
    window_mib = policy.windows.values.nbytes / 2**20
    return {
        "first": first,
        "first_cpu": first_cpu,
        "steps_per_s": steps / best_loop,
        "steps_per_cpu_s": steps / best_cpu,
        "policy_ms": 1e3 * best_policy / steps,
        "searches": searches,
        "visited": visited,
        "side": policy.windows.values.shape[-1],
        "window_mib": window_mib,
    }


def machine() -> str:
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load average {load}, {time.strftime('%Y-%m-%d %H:%M')}, commit {commit}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="swarm-10k only, fewer steps")
    parser.add_argument("--policies", nargs="+", default=["pibt"])
    args = parser.parse_args()
    print(machine())
    print(f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'unset')}\n")
    print(
        "| case | planner | first call s (wall / CPU) | env steps/s (planner + env.step; wall / CPU) | "
        "planner CPU ms/step | searches/step | cells visited/step | window side | windows MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, agents, side, steps in QUICK_CASES if args.quick else CASES:
        for policy_name in args.policies:
            r = run_case(name, agents, side, steps, policy_name)
            print(
                f"| {name} ({agents:,} agents, {side}x{side}) | {policy_name} | {r['first']:.2f} / "
                f"{r['first_cpu']:.2f} | {r['steps_per_s']:.1f} / {r['steps_per_cpu_s']:.1f} | "
                f"{r['policy_ms']:.1f} | {r['searches']:.1f} | {r['visited']:.3g} | "
                f"{r['side']} | {r['window_mib']:.0f} |",
                flush=True,
            )
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
