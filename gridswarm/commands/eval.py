"""`gridswarm eval RUN_DIR_OR_CHECKPOINT [--scenario ...] [--episodes K] [--record OUT.zarr] [--in-pogema]`:
POGEMA's metrics per scenario variant, as a table and as CSV/JSON."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import scenarios
from fsio import path_component
from gridswarm.arguments import MAX_ENVS, integer, seed
from marl.config import UPPER_BOUNDS, ConfigError
from marl.threads import TORCH_THREADS
from optdeps import require

USER_ERRORS = ("marl.config.ConfigError", "marl.run_dir.CheckpointError", "scenarios.errors.ScenarioError")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained policy: POGEMA's metrics per scenario variant",
        description="Plays K episodes per variant with the policy (sampled actions, batched over agents "
        "and episodes) and prints the table; also writes it as CSV and JSON next to the checkpoint.",
    )
    parser.add_argument(
        "target",
        help="a run directory (its best, else newest checkpoint), a .ckpt file or pretrained:NAME (the "
        "report then goes to the current directory)",
    )
    parser.add_argument("--scenario", help="scenario to evaluate on (default: the one trained on)")
    parser.add_argument("--episodes", type=integer(1, MAX_ENVS), default=20, help="episodes per variant")
    parser.add_argument("--seed", type=seed, default=0, help="evaluation seed")
    parser.add_argument(
        "--greedy", action="store_true", help="take the most probable action (default: sample)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="OUT.zarr",
        help="also write every evaluation episode to this episode store (sim.episodes)",
    )
    parser.add_argument(
        "--in-pogema",
        action="store_true",
        help="play the same tasks in GridSwarm and inside real pogema_v0 environments and "
        "report both side by side (scenarios POGEMA can express: maps of '.' and '#')",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--torch-threads",
        type=integer(1, UPPER_BOUNDS["torch_threads"]),
        default=TORCH_THREADS,
        help=f"torch's CPU threads (default {TORCH_THREADS}, as in training)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from marl.evaluate import evaluate_in_pogema
    from marl.learner import pick_device
    from marl.report import evaluate_and_report, report
    from marl.run_dir import PRETRAINED_PREFIX, load_policy, run_scenario
    from marl.threads import use_torch_threads

    if args.in_pogema and args.record is not None:
        raise ConfigError("--record writes GridSwarm's own evaluation; run it without --in-pogema")
    use_torch_threads(args.torch_threads)
    try:
        device = pick_device(args.device)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    policy, meta = load_policy(args.target, device)
    checkpoint = Path(meta["checkpoint"])
    # by default the scenario the policy was trained on, as it was loaded then
    scenario = scenarios.load(args.scenario) if args.scenario is not None else run_scenario(meta, checkpoint)
    checkpoints = next((parent for parent in checkpoint.parents if parent.name == "checkpoints"), None)
    # one report per (checkpoint, scenario, mode): evaluating best/ and the final step, or sampled and
    # greedy actions, must not overwrite each other
    suffix = ("-pogema" if args.in_pogema else "") + ("-greedy" if args.greedy else "")
    which = "best" if checkpoint.parent.name == "best" else checkpoint.stem
    if str(args.target).startswith(PRETRAINED_PREFIX):  # never write into the installed package
        stem = Path(path_component(f"pretrained-{checkpoint.stem}-eval-{scenario.name}{suffix}"))
    elif checkpoints:
        stem = checkpoints.parent / path_component(f"eval-{scenario.name}-{which}{suffix}")
    else:
        stem = checkpoint.with_name(path_component(f"{checkpoint.stem}-eval-{scenario.name}{suffix}"))
    if args.in_pogema:
        require("pogema", "pogema", "--in-pogema")
        try:
            rows = evaluate_in_pogema(
                scenario, policy, args.episodes, args.seed, device, greedy=args.greedy, progress=True
            )
        except ValueError as error:
            raise ConfigError(f"--in-pogema: scenario {scenario.name!r}: {error}") from None
        report(rows, stem, meta)
        return 0
    _require_policy_fits(scenario, policy, checkpoint)
    evaluate_and_report(
        scenario,
        policy,
        args.episodes,
        args.seed,
        device,
        stem,
        greedy=args.greedy,
        record=args.record,
        meta=meta,
    )
    return 0


def _require_policy_fits(scenario: Any, policy: Any, checkpoint: Path) -> None:
    """ConfigError when the scenario's observations are not what the policy was trained to read."""
    from sim.env import GridEnv

    shape = tuple(GridEnv(scenario, num_envs=1, seed=0).obs_shape)
    if shape != tuple(policy.config.obs_shape):
        raise ConfigError(
            f"scenario {scenario.name!r} gives observations of shape {shape}, the policy of {checkpoint} "
            f"reads {tuple(policy.config.obs_shape)} (evaluate it on scenarios like the one it learned)"
        )
