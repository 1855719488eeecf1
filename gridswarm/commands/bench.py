"""`gridswarm bench`: simulator throughput, side by side with POGEMA 1.4.0 in the same process.

Setting (the project's targets): one thread, observations included, soft collisions, lifelong
(`on_target='restart'`), obs radius 5, density 0.3, the same pogema `GridConfig` for both simulators
(GridSwarm via `GridEnv.from_pogema`, so both run the same maps and tasks, and pogema is needed). Actions are
drawn before timing, so only `step` is timed; the `greedy` column also times GridSwarm's greedy baseline
(distance fields and all), which reaches goals and so exercises lifelong goal draws. Greedy is not run at
10k+ agents: its distance-field cache (256 fields of 1 MiB at 512x512) thrashes with 10k distinct goals,
so each step recomputes ~N BFS fields. Resets are timed on the second reset (the first compiles).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pogema import GridConfig  # pogema is optional: imported when a benchmark runs

USER_ERRORS: tuple[type[Exception], ...] = ()


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
    Case(10_000, 512, 40, 5, 0),
    Case(100_000, 1024, 8, 2, 0),
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


def grid_config(case: Case, seed: int = 0) -> GridConfig:
    from pogema import GridConfig

    return GridConfig(
        num_agents=case.agents, size=case.size, density=0.3, seed=seed, obs_radius=5,
        collision_system="soft", on_target="restart", max_episode_steps=10**6,
    )  # fmt: skip


def measure_ours(case: Case, greedy: bool) -> tuple[float, float]:
    """(env steps/s, reset seconds) of GridSwarm, random actions or the greedy baseline."""
    from sim.baselines import GreedyPolicy
    from sim.env import GridEnv

    env = GridEnv.from_pogema(grid_config(case), num_envs=1, pogema_bugs=False)
    env.reset()  # compiles or loads numba's cache
    started = time.perf_counter()
    env.reset()
    reset_seconds = time.perf_counter() - started
    steps = case.greedy_steps if greedy else case.steps
    actions = np.random.default_rng(0).integers(0, 5, size=(steps, 1, case.agents))
    policy = GreedyPolicy(env, seed=0) if greedy else None
    env.step(policy() if policy else actions[0])  # warm-up
    started = time.perf_counter()
    for t in range(steps):
        env.step(policy() if policy else actions[t])
    return steps / (time.perf_counter() - started), reset_seconds


def measure_pogema(case: Case) -> tuple[float, float]:
    """(env steps/s, reset seconds) of POGEMA 1.4.0 with random actions."""
    from pogema import pogema_v0

    env = pogema_v0(grid_config=grid_config(case))
    env.reset()
    started = time.perf_counter()
    env.reset()
    reset_seconds = time.perf_counter() - started
    actions = np.random.default_rng(0).integers(0, 5, size=(case.pogema_steps, case.agents)).tolist()
    started = time.perf_counter()
    for t in range(case.pogema_steps):
        env.step(list(actions[t]))  # soft mode edits the list in place
    return case.pogema_steps / (time.perf_counter() - started), reset_seconds


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
    try:
        import pogema  # noqa: F401 (both simulators are configured from a pogema GridConfig)
    except ImportError:
        print("gridswarm bench: error: needs pogema for its GridConfig (pip install 'gridswarm[pogema]')")
        return 2
    print("one thread, soft collisions, lifelong, obs radius 5, density 0.3, random actions (greedy column:")
    print("GridSwarm's greedy baseline); env steps per second")
    run_cases(QUICK_CASES if args.quick else FULL_CASES, args.against_pogema)
    return 0
