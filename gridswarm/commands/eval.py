"""`gridswarm eval RUN_DIR_OR_CHECKPOINT [--scenario ...] [--episodes K]`: POGEMA metrics per variant."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import scenarios
from gridswarm.commands.train import evaluate_and_report
from marl.config import ConfigError
from marl.run_dir import CheckpointError, resolve_checkpoint
from marl.train import load_policy, pick_device

USER_ERRORS = (ConfigError, CheckpointError, scenarios.ScenarioError)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a trained policy: POGEMA's metrics per scenario variant",
        description="Plays K episodes per variant with the policy (sampled actions, batched over agents "
        "and episodes) and prints the table; also writes it as CSV and JSON next to the checkpoint.")
    parser.add_argument("target", type=Path,
                        help="a run directory (its best, else newest checkpoint) or a .ckpt file")
    parser.add_argument("--scenario", help="scenario to evaluate on (default: the one trained on)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per variant")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    checkpoint = resolve_checkpoint(args.target)
    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes}: expected a positive integer")
    device = pick_device(args.device)
    policy, meta = load_policy(checkpoint, device)
    name = args.scenario or meta.get("scenario")
    if name is None:
        raise ConfigError(f"{checkpoint}: no scenario recorded; pass --scenario")
    scenario = scenarios.load(name)
    checkpoints = next((parent for parent in checkpoint.parents if parent.name == "checkpoints"), None)
    stem = checkpoints.parent / f"eval-{scenario.name}" if checkpoints \
        else checkpoint.with_name(f"{checkpoint.stem}-eval-{scenario.name}")
    evaluate_and_report(scenario, policy, args.episodes, args.seed, device, stem)
    return 0
