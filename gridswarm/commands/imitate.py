"""`gridswarm imitate SCENARIO [--expert NAME] [--expert-data STORE] [--out DIR] [--resume [auto]]
[--set key=value]`: expert episodes -> behaviour cloning -> DAgger -> MAPPO fine-tuning, in one run directory
(marl/imitation.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import scenarios
from fsio import path_component
from gridswarm.arguments import TRAINING_ERRORS, seed
from marl.config import (
    ConfigError,
    parse_assignments,
    resolve_config,
    resolve_imitation_config,
    split_overrides,
)
from memory.config import POLICY_NAMES

# the recipe ends in a MAPPO run: train's errors, and the episode stores'
USER_ERRORS = (
    *TRAINING_ERRORS,
    "sim.episode_format.EpisodeStoreError",
    "sim.planners.lacam_policy.NotPlannable",
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "imitate",
        help="learn a swarm policy from an expert: expert episodes, cloning, DAgger, MAPPO fine-tuning",
        description="Settings come from marl.config.ImitationConfig and TrainConfig, then the scenario's "
        "train block (ImitationConfig keys in its imitation: block), then --set key=value (either "
        "config's keys) and the flags. The run directory gets config.yaml, metrics.jsonl (one row per "
        "stage), experts.zarr, dagger.zarr, checkpoints/ (one per stage), mappo/ (the fine-tuning run) "
        "and the closing evaluation of the final policy (eval.csv, eval.json).",
    )
    parser.add_argument("scenario", help="built-in scenario name or YAML file")
    parser.add_argument(
        "--expert", help="the expert: a planner (pibt, pibt-swap, ...) or a baseline (default pibt)"
    )
    parser.add_argument(
        "--expert-data",
        type=Path,
        metavar="STORE",
        help="clone these recorded expert episodes (gridswarm run ... --record STORE) instead of recording",
    )
    parser.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from a policy's weights (a checkpoint, run directory or pretrained:NAME)",
    )
    parser.add_argument("--model", choices=POLICY_NAMES, help="policy architecture (default: srmt)")
    parser.add_argument("--seed", type=seed, help="seed of data, initialization and sampling")
    parser.add_argument(
        "--out", type=Path, help="run directory (default: runs/SCENARIO-imitate-EXPERT-sSEED)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the policy runs")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="yes",
        choices=("yes", "auto"),
        help="continue the run in --out after its last finished stage (bare --resume), or 'auto': "
        "continue it if it exists, start it otherwise",
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any ImitationConfig or TrainConfig field, e.g. --set bc_epochs=4 (repeatable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from marl.envs import require_window_observation
    from marl.imitation import Imitation
    from marl.learner import pick_device
    from marl.report import evaluate_final_policy
    from marl.run_dir import load_policy
    from marl.train import TrainingStopped
    from sim import episodes

    scenario = scenarios.load(args.scenario)
    require_window_observation(scenario)
    train_overrides, imitation_overrides = split_overrides(parse_assignments(args.assignments))
    flags = {"model": args.model, "seed": args.seed, "device": args.device}
    train_overrides |= {k: v for k, v in flags.items() if v is not None}
    if args.expert is not None:
        imitation_overrides["expert"] = args.expert
    if args.init is not None:
        imitation_overrides["init"] = args.init
    if args.expert_data is not None:
        if not len(episodes.open(args.expert_data)):  # a store, and not an empty one
            raise ConfigError(f"--expert-data {args.expert_data}: the store holds no episode")
        imitation_overrides["expert_data"] = str(args.expert_data.resolve())
    source = scenario.source or scenario.name
    config = resolve_config(scenario.train, train_overrides, source)
    imitation = resolve_imitation_config(scenario.train, imitation_overrides, source)
    out = args.out or Path("runs") / path_component(
        f"{scenario.name}-imitate-{imitation.expert}-s{config.seed}"
    )
    resume = {"yes": True, "auto": "auto", None: False}[args.resume]
    print(
        f"imitating {imitation.expert} with {config.model} on {scenario.name}: {imitation.bc_epochs} cloning "
        f"epochs, {imitation.dagger_iterations} DAgger iterations, {imitation.finetune_agent_steps:,} "
        f"agent-steps of MAPPO -> {out}"
    )
    try:
        recipe = Imitation(scenario, imitation, config, out, args.scenario)
    except ValueError as error:  # --device cuda without CUDA
        raise ConfigError(str(error)) from None
    try:
        final = recipe.run(resume=resume)
    except TrainingStopped as stopped:  # a stop signal during fine-tuning: --resume continues it
        print(f"gridswarm imitate: {stopped}", file=sys.stderr)
        return 0 if stopped.requeued else 1
    print(f"final policy: {final}")
    if config.eval_episodes > 0:
        device = pick_device(config.device)
        policy, meta = load_policy(final, device)
        evaluate_final_policy(scenario, policy, meta, config.eval_episodes, config.seed, device, out)
    return 0
