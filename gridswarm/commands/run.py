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
from sim.policy_names import BASELINES, GUIDABLE_PLANNERS, PLANNERS, POLICIES

if TYPE_CHECKING:
    from marl.rollout import Policy
    from sim.env import GridEnv


class UnknownPolicyError(ValueError):
    """`--policy` or `--guide` names no baseline, planner or trained policy, or one that cannot play the
    scenario."""


USER_ERRORS = (
    "scenarios.errors.ScenarioError",
    "gridswarm.commands.run.UnknownPolicyError",
    "marl.run_dir.CheckpointError",
    "sim.planners.lacam_policy.NotPlannable",
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
    parser.add_argument(
        "--guide",
        metavar="CHECKPOINT",
        default=None,
        help="policy-guided PIBT (centralized): a trained policy (checkpoint, run directory or "
        "pretrained:NAME) orders the moves of the --policy planner "
        f"({', '.join(GUIDABLE_PLANNERS)}) by its action probabilities",
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


def _check_policy_name(name: str, guide: str | None = None) -> None:
    """A baseline or planner name, an existing path or pretrained:NAME, and with a guide a planner it can
    guide and a guide of those two last kinds; else a one-line UnknownPolicyError."""
    from marl.run_dir import PRETRAINED_PREFIX

    def trained(source: str) -> bool:
        return source.startswith(PRETRAINED_PREFIX) or (source != "" and Path(source).exists())

    if not (name in POLICIES or trained(name)):
        raise UnknownPolicyError(
            f"unknown policy '{name}' (expected one of: {', '.join(POLICIES)}, a checkpoint, a run "
            f"directory or {PRETRAINED_PREFIX}NAME)"
        )
    if guide is None:
        return
    if name not in GUIDABLE_PLANNERS:
        raise UnknownPolicyError(
            f"--guide orders a planner's moves: --policy must be one of {', '.join(GUIDABLE_PLANNERS)}, "
            f"not '{name}'"
        )
    if not trained(guide):
        raise UnknownPolicyError(
            f"--guide '{guide}': expected a checkpoint, a run directory or {PRETRAINED_PREFIX}NAME"
        )


def make_policy(
    name: str, env: GridEnv, seed: int | None, guide: str | None = None
) -> Callable[[], np.ndarray]:
    """A zero-argument callable giving (E, N) actions for the env's current state: a baseline or planner by
    name, a trained policy (checkpoint, run directory or pretrained:NAME) sampling its actions, or with
    `guide` (a trained policy) the planner `name` with its moves ordered by the guide (marl.guided)."""
    _check_policy_name(name, guide)
    if guide is not None:
        from marl.guided import GuidedPlanner

        return GuidedPlanner(_trained_policy(guide, env), env, name, seed)
    if name in POLICIES:
        from sim.baselines import make_baseline

        return make_baseline(name, env, seed)
    from marl.evaluate import PolicyActor

    return PolicyActor(_trained_policy(name, env), env, seed or 0)


def _trained_policy(source: str, env: GridEnv) -> Policy:
    """The trained policy `source` (checkpoint, run directory or pretrained:NAME), checked to read the
    env's observations; else a one-line UnknownPolicyError."""
    from marl.run_dir import load_policy

    policy, meta = load_policy(source)
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
    return policy


def policy_identity(name: str, seed: int | None, guide: str | None = None) -> str:
    """What an episode store records as the policy."""
    if guide is not None:
        return f"{name} guided by trained policy {guide} (centralized, seed {seed})"
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


def render_first_episode(
    scenario: Scenario, policy_name: str, seed: int | None, path: str, guide: str | None = None
) -> None:
    """Replay env 0's first episode (same task; the policy's random draws are its own) and save a GIF."""
    from sim.env import GridEnv
    from sim.render import save_gif

    env = GridEnv(scenario, num_envs=1, seed=seed, auto_reset=False)
    policy = make_policy(policy_name, env, seed, guide)
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

    _check_policy_name(args.policy, args.guide)
    scenario = load(args.scenario)
    env = GridEnv(scenario, num_envs=args.envs, seed=args.seed)
    policy = make_policy(args.policy, env, args.seed, args.guide)
    if args.record:
        from sim.episodes import Recorder

        with Recorder(
            env, args.record, policy=policy_identity(args.policy, args.seed, args.guide)
        ) as recorder:
            rows = play_episodes(env, policy, args.episodes, recorder)
    else:
        rows = play_episodes(env, policy, args.episodes)
    playing = args.policy if args.guide is None else f"{args.policy} guided by {args.guide} (centralized)"
    print(f"{scenario.name}: {playing} policy, {args.episodes} episodes, {args.envs} envs")
    print(metrics_table(rows))
    if args.render:
        render_first_episode(scenario, args.policy, args.seed, args.render, args.guide)
        print(f"rendered env 0's first episode to {args.render}")
    if args.record:
        print(f"recorded the finished episodes to {args.record}")
    return 0
