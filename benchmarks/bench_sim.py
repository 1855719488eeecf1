"""Simulator throughput vs POGEMA 1.4.0 (the targets' setting; see gridswarm/commands/bench.py), then
GridSwarm alone in its batched form (num_envs > 1) and with uint8 observations.

Usage: NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sim.py [--quick]
Prints Markdown tables (machine and date first) for docs/benchmarks.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one thread, before numba is imported

import argparse
import datetime
import platform
import time

import numpy as np

from gridswarm.commands.bench import FULL_CASES, QUICK_CASES, run_cases
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario
from sim.actions import NUM_ACTIONS

# (agents per env, map side, num_envs, timed steps): about the same agent count per step within a row pair.
BATCHED_CASES = ((64, 32, 1, 2000), (64, 32, 64, 60), (1024, 128, 1, 200), (1024, 128, 16, 20),
                 (10_000, 512, 1, 20), (100_000, 1024, 1, 4))  # fmt: skip
QUICK_BATCHED_CASES = ((64, 32, 1, 300), (64, 32, 64, 10), (1024, 128, 1, 40))
# (agents, map side, timed steps) of the greedy baseline at scale
GREEDY_CASES = ((1024, 128, 100), (10_000, 512, 20))
QUICK_GREEDY_CASES = ((1024, 128, 20),)


def targets_scenario(agents: int, size: int) -> Scenario:
    """The targets' setting: soft collisions, lifelong, obs radius 5, density 0.3, episodes outlast timing."""
    return Scenario(
        name=f"bench-{agents}", map=MapSpec(width=size, height=size, density=0.3),
        agents=AgentsSpec(count=agents), observation=ObservationSpec(radius=5),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=10**6),
    )  # fmt: skip


def batched_steps_per_second(agents: int, size: int, num_envs: int, steps: int, obs_dtype: type) -> float:
    """Batch steps per second of GridEnv (one thread, random actions drawn before timing)."""
    from sim.env import GridEnv

    env = GridEnv(targets_scenario(agents, size), num_envs, seed=0, num_threads=1, obs_dtype=obs_dtype)
    env.reset()
    actions = np.random.default_rng(0).integers(0, NUM_ACTIONS, size=(steps + 1, num_envs, agents))
    env.step(actions[0])  # compiles or loads numba's cache
    started = time.perf_counter()
    for t in range(1, steps + 1):
        env.step(actions[t])
    return steps / (time.perf_counter() - started)


def run_batched(cases: tuple[tuple[int, int, int, int], ...]) -> None:
    print(
        "\n| agents/env | map | num_envs | float32: env steps/s | agent-steps/s | uint8: env steps/s "
        "| agent-steps/s |\n|---|---|---|---|---|---|---|"
    )
    for agents, size, num_envs, steps in cases:
        wide = batched_steps_per_second(agents, size, num_envs, steps, np.float32) * num_envs
        narrow = batched_steps_per_second(agents, size, num_envs, steps, np.uint8) * num_envs
        print(
            f"| {agents:,} | {size}x{size} | {num_envs} | {wide:.4g} | {wide * agents:.3g} | {narrow:.4g} "
            f"| {narrow * agents:.3g} |",
            flush=True,
        )


def run_greedy(cases: tuple[tuple[int, int, int], ...]) -> None:
    """The greedy baseline on the targets' setting: its first call (every agent plans a path), then
    steady env steps/s with the policy, the policy's share, and the size of its plan state."""
    from sim.baselines import GreedyPolicy
    from sim.env import GridEnv

    print(
        "\n| agents | map | first call (plans all) | greedy env steps/s | policy ms/step | plan state MiB |"
        "\n|---|---|---|---|---|---|"
    )
    for agents, size, steps in cases:
        env = GridEnv(targets_scenario(agents, size), 1, seed=0, num_threads=1)
        env.reset()
        policy = GreedyPolicy(env, seed=0)
        started = time.perf_counter()
        env.step(policy())
        first = time.perf_counter() - started
        in_policy = 0.0
        started = time.perf_counter()
        for _ in range(steps):
            before = time.perf_counter()
            actions = policy()
            in_policy += time.perf_counter() - before
            env.step(actions)
        rate = steps / (time.perf_counter() - started)
        state = sum(a.nbytes for a in (*policy._plans, *policy._search, policy._known_obstacles)) / 2**20
        print(
            f"| {agents:,} | {size}x{size} | {first:.3g} s | {rate:.4g} | {1e3 * in_policy / steps:.3g} "
            f"| {state:.3g} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 64 and 1,024 agents")
    args = parser.parse_args()
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    run_cases(QUICK_CASES if args.quick else FULL_CASES, against_pogema=True)
    run_batched(QUICK_BATCHED_CASES if args.quick else BATCHED_CASES)
    run_greedy(QUICK_GREEDY_CASES if args.quick else GREEDY_CASES)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
