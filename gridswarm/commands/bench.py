"""`gridswarm bench`: simulator throughput, optionally side by side with POGEMA 1.4.0 in the same process.

Setting (the project's targets): one thread, observations included, soft collisions, lifelong
(`on_target='restart'`), obs radius 5, density 0.3. Each case is a `Scenario`; GridSwarm plays its episode
of seed `BENCH_SEED` and, with `--against-pogema`, POGEMA plays that scenario's `GridConfig` with the same
seed, which gives the same map and task (GridSwarm's random maps and placement are POGEMA's). pogema is
optional: without it only GridSwarm's columns are measured. Actions are drawn before timing, so only
`step` is timed; the `greedy` column also times GridSwarm's greedy baseline (distance fields and all),
which reaches goals and so exercises lifelong goal draws. Greedy is not run at 10k+ agents: its
distance-field cache (256 fields of 1 MiB at 512x512) thrashes with 10k distinct goals, so each step
recomputes ~N BFS fields. Resets are timed on the second reset (the first compiles). Steps are timed in
`WINDOWS` consecutive windows per engine and the fastest window counts.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from optdeps import require
from scenarios.schema import AgentsSpec, DynamicsSpec, MapSpec, ObservationSpec, Scenario

USER_ERRORS: tuple[str, ...] = ()
BENCH_SEED = 0
WINDOWS = 5
"""Both engines are timed over this many consecutive windows of a case's steps and the fastest window counts
(timeit's convention: on a shared host the shortest time is the least disturbed one). With 3, one slow
stretch of the host (a 64-agent step moved between 7 and 11 us from one process to the next, idle box)
still decided some runs."""


@dataclass(frozen=True)
class Case:
    """One benchmark configuration: `agents` on a `size` x `size` map, timed over `steps` steps."""

    agents: int
    size: int
    steps: int
    pogema_steps: int
    greedy_steps: int


FULL_CASES = (
    Case(64, 32, 2000, 300, 1000),
    Case(1024, 128, 300, 30, 100),
    Case(10_000, 512, 200, 10, 0),
    Case(100_000, 1024, 30, 2, 0),
)
QUICK_CASES = (Case(64, 32, 300, 100, 100), Case(1024, 128, 50, 10, 20))


@dataclass(frozen=True)
class Result:
    """Env steps per second (`None` where not measured) and reset seconds of one case."""

    case: Case
    ours: float
    ours_greedy: float | None
    ours_reset: float
    pogema: float | None
    pogema_reset: float | None


def case_scenario(case: Case) -> Scenario:
    """The scenario a case benchmarks: `size` x `size` random map, the targets' setting, episodes that
    outlast the timing."""
    return Scenario(
        name=f"bench-{case.agents}", map=MapSpec(width=case.size, height=case.size, density=0.3),
        agents=AgentsSpec(count=case.agents), observation=ObservationSpec(radius=5),
        dynamics=DynamicsSpec(collision_system="soft", on_target="restart", max_episode_steps=10**6),
        seed=BENCH_SEED,
    )  # fmt: skip


def bench_env(case: Case) -> Any:
    """GridSwarm's env of a case, on the episode of seed `BENCH_SEED` (POGEMA's GridConfig(seed=0) task)."""
    from sim.env import GridEnv

    env = GridEnv(case_scenario(case), num_envs=1, auto_reset=False)
    env.reset(episode_seeds=np.array([BENCH_SEED]))  # compiles or loads numba's cache
    return env


def pogema_env(case: Case) -> Any:
    """POGEMA's env of the same scenario and seed (needs pogema)."""
    from pogema import pogema_v0

    from sim.pogema_adapter import grid_config_from_scenario

    return pogema_v0(grid_config=grid_config_from_scenario(case_scenario(case), seed=BENCH_SEED))


def fastest_rate(step: Callable[[int], Any], steps: int) -> float:
    """Steps per second of the fastest of `WINDOWS` consecutive windows of `steps` calls step(t), with t
    counting on across windows (0 .. WINDOWS * steps - 1)."""
    seconds = []
    for window in range(WINDOWS):
        started = time.perf_counter()
        for t in range(window * steps, (window + 1) * steps):
            step(t)
        seconds.append(time.perf_counter() - started)
    return steps / min(seconds)


def measure_ours(case: Case, greedy: bool) -> tuple[float, float]:
    """(env steps/s, reset seconds) of GridSwarm, random actions or the greedy baseline."""
    from sim.actions import NUM_ACTIONS
    from sim.baselines import GreedyPolicy

    env = bench_env(case)
    started = time.perf_counter()
    env.reset(episode_seeds=np.array([BENCH_SEED]))
    reset_seconds = time.perf_counter() - started
    steps = case.greedy_steps if greedy else case.steps
    actions = np.random.default_rng(0).integers(0, NUM_ACTIONS, size=(WINDOWS * steps, 1, case.agents))
    policy = GreedyPolicy(env, seed=0) if greedy else None
    env.step(policy() if policy else actions[0])  # warm-up
    rate = fastest_rate(lambda t: env.step(policy() if policy else actions[t]), steps)
    return rate, reset_seconds


def measure_pogema(case: Case) -> tuple[float, float]:
    """(env steps/s, reset seconds) of POGEMA 1.4.0 with random actions."""
    from sim.actions import NUM_ACTIONS

    env = pogema_env(case)
    env.reset()
    started = time.perf_counter()
    env.reset()
    reset_seconds = time.perf_counter() - started
    steps = case.pogema_steps
    actions = np.random.default_rng(0).integers(0, NUM_ACTIONS, size=(WINDOWS * steps, case.agents)).tolist()
    rate = fastest_rate(lambda t: env.step(list(actions[t])), steps)  # soft mode edits the list in place
    return rate, reset_seconds


def run_cases(cases: tuple[Case, ...], against_pogema: bool, echo: bool = True) -> list[Result]:
    """Measure every case (one thread); print each row as it completes when `echo`."""
    import numba

    numba.set_num_threads(1)
    results = []
    if echo:
        print(table_header())
    for case in cases:
        ours, ours_reset = measure_ours(case, greedy=False)
        ours_greedy = measure_ours(case, greedy=True)[0] if case.greedy_steps else None
        pogema, pogema_reset = measure_pogema(case) if against_pogema else (None, None)
        results.append(Result(case, ours, ours_greedy, ours_reset, pogema, pogema_reset))
        if echo:
            print(table_row(results[-1]))
    return results


def table_header() -> str:
    return (
        "| agents | map | GridSwarm steps/s | agent-steps/s | greedy steps/s | POGEMA steps/s | speed-up "
        "| reset GridSwarm | reset POGEMA | reset speed-up |\n|---|---|---|---|---|---|---|---|---|---|"
    )


def table_row(r: Result) -> str:
    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.0f}x" if a is not None and b is not None else "-"

    def number(value: float | None, unit: str = "") -> str:
        return f"{value:.4g}{unit}" if value is not None else "-"

    return (
        f"| {r.case.agents:,} | {r.case.size}x{r.case.size} | {r.ours:.4g} | {r.ours * r.case.agents:.3g} "
        f"| {number(r.ours_greedy)} | {number(r.pogema)} | {ratio(r.ours, r.pogema)} | {r.ours_reset:.3g} s "
        f"| {number(r.pogema_reset, ' s')} | {ratio(r.pogema_reset, r.ours_reset)} |"
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="simulator throughput, optionally against POGEMA")
    parser.add_argument("--against-pogema", action="store_true", help="run POGEMA 1.4.0 on the same configs")
    parser.add_argument("--quick", action="store_true", help="only 64 and 1,024 agents, fewer steps")
    parser.set_defaults(handler=bench)


def bench(args: argparse.Namespace) -> int:
    if args.against_pogema:
        require("pogema", "pogema", "--against-pogema")
    else:
        print("GridSwarm's numbers only (POGEMA columns '-'; --against-pogema measures them)")
    print("one thread, soft collisions, lifelong, obs radius 5, density 0.3, random actions (greedy column:")
    print("GridSwarm's greedy baseline); env steps per second")
    run_cases(QUICK_CASES if args.quick else FULL_CASES, args.against_pogema)
    return 0
