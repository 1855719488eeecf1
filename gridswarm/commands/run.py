"""`gridswarm run SCENARIO`: play episodes with a baseline or a trained policy and print POGEMA's metrics per
episode."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gridswarm.arguments import MAX_ENVS, integer, seed
from scenarios.schema import Scenario
from sim.policy_names import BASELINES, PLANNERS, POLICIES

if TYPE_CHECKING:
    from sim.env import GridEnv


class UnknownPolicyError(ValueError):
    """`--policy` names no baseline, or a trained policy that cannot play the scenario."""


USER_ERRORS = (
    "scenarios.errors.ScenarioError",
    "gridswarm.commands.run.UnknownPolicyError",
    "marl.run_dir.CheckpointError",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="play a scenario with a baseline or a trained policy and print its metrics"
    )
    parser.add_argument("scenario", help="built-in scenario name or YAML path")
    parser.add_argument(
        "--policy",
        default="greedy",
        help=f"a baseline ({', '.join(BASELINES)}; default greedy), a planner ({', '.join(PLANNERS)}), or a "
        "trained policy: a checkpoint, a run directory or pretrained:NAME (sampled actions)",
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


def _check_policy_name(name: str) -> None:
    """A baseline or planner name, an existing path or pretrained:NAME; else a one-line UnknownPolicyError."""
    from marl.run_dir import PRETRAINED_PREFIX

    known = name in POLICIES or name.startswith(PRETRAINED_PREFIX) or (name != "" and Path(name).exists())
    if not known:
        raise UnknownPolicyError(
            f"unknown policy '{name}' (expected one of: {', '.join(POLICIES)}, a checkpoint, a run "
            f"directory or {PRETRAINED_PREFIX}NAME)"
        )


def make_policy(name: str, env: GridEnv, seed: int | None) -> Callable[[], np.ndarray]:
    """A zero-argument callable giving (E, N) actions for the env's current state: a baseline or planner by
    name, or a trained policy (checkpoint, run directory or pretrained:NAME) sampling its actions."""
    _check_policy_name(name)
    if name in POLICIES:
        from sim.baselines import make_baseline

        return make_baseline(name, env, seed)
    from marl.evaluate import PolicyActor
    from marl.run_dir import load_policy

    policy, meta = load_policy(name)
    wanted, given = tuple(policy.config.obs_shape), tuple(env.obs_shape)
    if wanted != given:
        raise UnknownPolicyError(
            f"{meta['checkpoint']}: the policy reads observations of shape {wanted}, scenario "
            f"'{env.scenario.name}' gives {given} (its observation channels and radius must match)"
        )
    if policy.config.scope == "local" and env.scenario.observation.neighbours == 0:
        raise UnknownPolicyError(
            f"{meta['checkpoint']}: a local-scope policy needs neighbour lists; scenario "
            f"'{env.scenario.name}' has observation.neighbours 0"
        )
    return PolicyActor(policy, env, seed or 0)


def policy_identity(name: str, seed: int | None) -> str:
    """What an episode store records as the policy."""
    if name in BASELINES:
        return f"{name} baseline (seed {seed})"
    if name in PLANNERS:
        return f"{name} (seed {seed})"
    return f"trained policy {name} (seed {seed})"


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
    from sim.baselines import play_episodes
    from sim.env import GridEnv

    _check_policy_name(args.policy)
    scenario = load(args.scenario)
    env = GridEnv(scenario, num_envs=args.envs, seed=args.seed)
    policy = make_policy(args.policy, env, args.seed)
    if args.record:
        from sim.episodes import Recorder

        with Recorder(env, args.record, policy=policy_identity(args.policy, args.seed)) as recorder:
            rows = play_episodes(env, policy, args.episodes, recorder)
    else:
        rows = play_episodes(env, policy, args.episodes)
    print(f"{scenario.name}: {args.policy} policy, {args.episodes} episodes, {args.envs} envs")
    print(metrics_table(rows))
    if args.render:
        render_first_episode(scenario, args.policy, args.seed, args.render)
        print(f"rendered env 0's first episode to {args.render}")
    if args.record:
        print(f"recorded the finished episodes to {args.record}")
    return 0
