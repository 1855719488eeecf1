"""`gridswarm run SCENARIO`: play episodes with a baseline policy and print POGEMA's metrics per episode."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gridswarm.arguments import MAX_ENVS, integer, seed
from scenarios.schema import Scenario

if TYPE_CHECKING:
    from sim.env import GridEnv
    from sim.episodes import Recorder

BASELINES = ("random", "greedy")
PLANNERS = ("pibt", "pibt-swap", "pibt-guided", "pibt-lns")  # sim.planners.PRESETS (a test keeps them equal)
POLICIES = (*BASELINES, *PLANNERS)


class UnknownPolicyError(ValueError):
    """`--policy` names no baseline."""


USER_ERRORS = ("scenarios.errors.ScenarioError", "gridswarm.commands.run.UnknownPolicyError")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="play a scenario with a baseline policy and print its metrics")
    parser.add_argument("scenario", help="built-in scenario name or YAML path")
    parser.add_argument(
        "--policy",
        default="greedy",
        help=f"baseline ({', '.join(BASELINES)}) or planner ({', '.join(PLANNERS)}); default greedy",
    )
    parser.add_argument("--episodes", type=integer(1, 10**6), default=4, help="episodes to play (default 4)")
    parser.add_argument(
        "--envs", type=integer(1, MAX_ENVS), default=1, help="environments stepped together (default 1)"
    )
    parser.add_argument("--seed", type=seed, default=None, help="base seed (default: the scenario's)")
    parser.add_argument("--render", metavar="OUT.gif", default=None, help="also draw env 0's first episode")
    parser.add_argument(
        "--record",
        metavar="OUT.zarr",
        default=None,
        help="also write every finished episode to this episode store (sim.episodes)",
    )
    parser.set_defaults(handler=run)


def make_policy(name: str, env: GridEnv, seed: int | None) -> Callable[[], np.ndarray]:
    """A zero-argument callable giving (E, N) actions for the env's current state."""
    from sim.baselines import GreedyPolicy, random_actions
    from sim.planners import make_planner

    if name in PLANNERS:
        return make_planner(name, env, seed)
    if name == "greedy":
        return GreedyPolicy(env, seed=seed)
    rng = np.random.default_rng(seed)
    return lambda: random_actions(env, rng)


def play(
    env: GridEnv, policy: Callable[[], np.ndarray], episodes: int, recorder: Recorder | None = None
) -> list[dict[str, float]]:
    """Step the auto-resetting env until `episodes` episodes have finished; their metrics in finishing order
    (ties by env index). `recorder` (a `sim.episodes.Recorder` around `env`) is stepped in its place."""
    io = env if recorder is None else recorder
    io.reset()
    finished: list[dict[str, float]] = []
    while len(finished) < episodes:
        _, _, _, _, info = io.step(policy())
        finished.extend(metrics for metrics in info["metrics"] if metrics is not None)
    return finished[:episodes]


def metrics_table(rows: list[dict[str, float]]) -> str:
    """One line per episode and a mean line, columns in the metrics' own key order."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    header = ["episode", *keys]
    lines = [[str(i), *(_number(row.get(key)) for key in keys)] for i, row in enumerate(rows)]
    means = [np.mean([row[key] for row in rows if key in row]) for key in keys]
    lines.append(["mean", *(_number(value) for value in means)])
    widths = [max(len(line[c]) for line in [header, *lines]) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in [header, *lines]
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def render_first_episode(scenario: Scenario, policy_name: str, seed: int | None, path: str) -> None:
    """Replay env 0's first episode (same task; the policy's random draws are its own) and save a GIF."""
    from sim.env import GridEnv
    from sim.render import save_gif

    env = GridEnv(scenario, num_envs=1, seed=seed, auto_reset=False)
    policy = make_policy(policy_name, env, seed)
    env.reset()
    positions, goals, active = [env.positions[0].copy()], [env.goals[0].copy()], [env.active[0].copy()]
    while True:
        _, _, terminated, truncated, _ = env.step(policy())
        positions.append(env.positions[0].copy())
        goals.append(env.goals[0].copy())
        active.append(env.active[0].copy())
        if terminated.all() or truncated.all():
            break
    height, width = env.map_shapes[0]
    save_gif(path, env.obstacles[0, :height, :width], np.stack(positions), np.stack(goals), np.stack(active))


def run(args: argparse.Namespace) -> int:
    from scenarios.loader import load
    from sim.env import GridEnv

    if args.policy not in POLICIES:
        raise UnknownPolicyError(f"unknown policy '{args.policy}' (expected one of: {', '.join(POLICIES)})")
    scenario = load(args.scenario)
    env = GridEnv(scenario, num_envs=args.envs, seed=args.seed)
    policy = make_policy(args.policy, env, args.seed)
    if args.record:
        from sim.episodes import Recorder

        with Recorder(env, args.record, policy=f"{args.policy} (seed {args.seed})") as recorder:
            rows = play(env, policy, args.episodes, recorder)
    else:
        rows = play(env, policy, args.episodes)
    print(f"{scenario.name}: {args.policy} policy, {args.episodes} episodes, {args.envs} envs")
    print(metrics_table(rows))
    if args.render:
        render_first_episode(scenario, args.policy, args.seed, args.render)
        print(f"rendered env 0's first episode to {args.render}")
    if args.record:
        print(f"recorded the finished episodes to {args.record}")
    return 0
